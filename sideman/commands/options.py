"""Command-line options generated from a stage's settings dataclass (training.stages):
one --option per field, its default and help text from the field, so a trainer's command
and `sideman train all` read one definition."""
from __future__ import annotations

import argparse
import dataclasses

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
        if type_name == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
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
