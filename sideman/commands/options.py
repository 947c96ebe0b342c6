"""Command-line options generated from a stage's settings dataclass (training.stages):
one --option per field, its default and help text from the field, so a trainer's command
and `sideman train all` read one definition."""
from __future__ import annotations

import argparse
import dataclasses
import math

from sideman.numerics.checks import check_number, range_rule

_CASTS = {"int": int, "float": float, "str": str}


def _cast(type_name: str):
    """The parser of a field annotated `type_name` ('int', 'float | None', ...)."""
    names = [t.strip() for t in type_name.split("|")]
    base = _CASTS[next(t for t in names if t != "None")]
    if "None" not in names:
        return base

    def optional(text: str):
        return None if text.lower() == "none" else base(text)
    optional.__name__ = base.__name__
    return optional


def add_dataclass_options(parser: argparse.ArgumentParser, kind, fields=None) -> None:
    """One --option per field of dataclass `kind` (or per field in `fields`)."""
    for f in fields if fields is not None else dataclasses.fields(kind):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        type_name = f.type if isinstance(f.type, str) else f.type.__name__
        limits = {k: f.metadata[k] for k in ("low", "high", "above") if k in f.metadata}
        if type_name == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        elif limits:
            add_number(parser, flag, kind=_cast(type_name), default=f.default, help=help_text, **limits)
        else:
            parser.add_argument(flag, type=_cast(type_name), default=f.default, help=help_text)


def from_options(kind, args: argparse.Namespace):
    """An instance of `kind` from the parsed options (fields without an option keep their default)."""
    return kind(**{f.name: getattr(args, f.name) for f in dataclasses.fields(kind) if hasattr(args, f.name)})


def band_codec_option(spec: str):
    """The band codec (numerics.band_codec) named by a codec option's value, 'band' or
    'band:FRAMES' (STFT frames per latent; default 4), or None for any other value."""
    if spec != "band" and not spec.startswith("band:"):
        return None
    from sideman.numerics.band_codec import BandCodec, BandCodecConfig

    pool = spec.partition(":")[2] or "4"
    if not pool.isdigit() or int(pool) < 1:
        raise ValueError(f"{spec}: the band codec takes a whole number of frames per latent, e.g. band:4")
    return BandCodec(BandCodecConfig(pool=int(pool)))


def add_number(parser, *flags: str, kind=int, low=None, high=None, above: bool = False,
               unit: str = "", help: str = "", **kwargs) -> argparse.Action:
    """A numeric option that refuses values outside low..high (`above`: strictly above low),
    NaN and infinities with one wording: "--steps must be within 1..8, got 0". The range is
    appended to the help text."""
    rule = range_rule(low, high, above, unit)

    class Ranged(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            for value in values if isinstance(values, (list, tuple)) else [values]:
                if value is None:  # an optional setting's 'none'
                    continue
                check_number(option_string or flags[0], value, low, high, above, unit, parser.error)
            setattr(namespace, self.dest, values)

    text = f"{help} [{rule}]" if help else rule
    return parser.add_argument(*flags, type=kind, action=Ranged, help=text, **kwargs)


LOUDNESS_RANGE = (-70.0, 0.0)  # LUFS a --loudness number may name (BS.1770's absolute gate to full scale)


def _loudness(text: str):
    if text in ("context", "off"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes 'context', 'off' or a loudness in LUFS, got '{text}'") from None
    low, high = LOUDNESS_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise argparse.ArgumentTypeError(f"a loudness must be within {low:g}..{high:g} LUFS, got {text}")
    return value


def add_loudness_option(parser: argparse.ArgumentParser) -> None:
    """--loudness, shared by `generate` and `demo` (plugin_host.postprocess.set_loudness)."""
    parser.add_argument("--loudness", type=_loudness, default="context", metavar="context|off|LUFS",
                        help="loudness of the stem written: 'context' puts it 3 LU under the context's "
                             "integrated loudness, as the host hands takes to the DAW (left as generated "
                             "without a context); a number sets it in LUFS (-70..0); 'off' keeps the "
                             "model's level. Peaks stay at or below 0.99 (default: context)")


class progress_bar:
    """A tqdm bar of the engine's sampling steps, called as its progress(step, total); after
    the last step it says "decoding" (the decoder runs then). `close()` when done."""

    def __init__(self, steps: int, quiet: bool, desc: str = "generating"):
        from tqdm import tqdm

        self.bar = tqdm(total=steps, desc=desc, unit="step", disable=quiet)
        self.done = 0

    def __call__(self, step: int, total: int) -> None:
        if total != self.bar.total:  # a variation samples fewer steps
            self.bar.total = total
        self.bar.update(step - self.done)
        self.done = step
        if step == total:
            self.bar.set_postfix_str("decoding")

    def close(self) -> None:
        self.bar.close()
