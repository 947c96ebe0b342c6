"""Model commands: presets, export of a bundle, offline generation with a bundle."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from sideman.commands.options import add_loudness_option, add_number
from sideman.plugin_host.bundle import PRECISION_HELP, PRECISIONS


def _presets(args: argparse.Namespace) -> int:
    from sideman.models.presets import table

    print(f"{'model':<12} {'preset':<8} {'parameters':>14}")
    for kind, name, count in table():
        print(f"{kind:<12} {name:<8} {count:>14,}")
    print("(clap counts the trainable towers; its frozen MiniLM text encoder adds 22.7M)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from sideman.export.bundle import export_bundle
    from sideman.models.autoencoder import load_autoencoder
    from sideman.models.bridge import ClapBridge
    from sideman.models.clap_house import HouseClap
    from sideman.models.dit_checkpoint import load_dit

    from sideman.commands.options import band_codec_option

    codec = band_codec_option(str(args.autoencoder)) or load_autoencoder(Path(args.autoencoder))
    out = export_bundle(args.out, codec, load_dit(args.dit),
                        HouseClap.load(args.clap) if args.clap else None,
                        ClapBridge.load(args.bridge) if args.bridge else None,
                        conditioning_from=args.conditioning_from, dit_fp16_weights=args.dit_fp16_weights,
                        name=args.name, fp16=args.fp16, int8=args.int8, check=not args.no_check,
                        decode_mode=args.decode_mode, decode_steps=args.decode_steps,
                        training={"autoencoder": str(args.autoencoder), "dit": str(args.dit),
                                  "clap": str(args.clap or ""), "bridge": str(args.bridge or "")})
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"bundle written to {out} ({size:.1f} MB)")
    return 0


def _bundle_figures(args: argparse.Namespace) -> int:
    from sideman.evaluation.bundle_figures import summarise
    from sideman.export.bundle import write_figures
    from sideman.plugin_host.bundle import describe_figures

    figures = summarise(args.eval, args.text_control, args.speed, inputs=args.inputs)
    path = write_figures(args.bundle, figures)
    print("\n".join(describe_figures({"figures": figures})))
    print(f"figures written into {path}")
    return 0


def _read_context(paths: list[Path]):
    """One file, or several stems mixed by summing (all read at 48 kHz stereo)."""
    import numpy as np

    from sideman.data.audio import load_input

    clips = [load_input(p, "--context") for p in paths]
    n = max(c.shape[1] for c in clips)
    mix = np.zeros((2, n), np.float32)
    for c in clips:
        mix[:, :c.shape[1]] += c
    return mix


def check_steps(steps: int | None, bundle: Path | None) -> None:
    """--steps within 1..the bundle's max_steps (read from its manifest before any model
    loads; at least 1 when the manifest cannot be read: opening the bundle says why)."""
    if steps is None:
        return
    from sideman.defaults import bundle_path
    from sideman.plugin_host.bundle import manifest_max_steps

    from sideman.commands.options import check_number

    check_number("--steps", steps, 1, manifest_max_steps(bundle or bundle_path()))


def _parse_keep(spec: str) -> tuple[float, float]:
    start, sep, end = spec.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"--keep takes START:END in seconds, got '{spec}'")
    try:
        start_s, end_s = float(start), float(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--keep takes START:END in seconds, got '{spec}'") from None
    if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
        raise argparse.ArgumentTypeError(f"--keep needs 0 <= START < END, got '{spec}'")
    return start_s, end_s


# Output extensions `generate` writes, and soundfile's format for each.
OUTPUT_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "aiff": "AIFF", "aif": "AIFF",
                  "w64": "W64", "rf64": "RF64", "caf": "CAF", "mp3": "MP3"}
MAX_GENERATE_SECONDS = 3600.0


def output_format(path: Path) -> tuple[str, str]:
    """(format, subtype) for an output file by its extension: float samples where the format
    has them, else 24-bit, else the format's default; ValueError for anything else."""
    import soundfile as sf

    available = sf.available_formats()
    known = {ext: fmt for ext, fmt in OUTPUT_FORMATS.items() if fmt in available}
    fmt = known.get(path.suffix[1:].lower())
    if fmt is None:
        raise ValueError(f"cannot write audio to '{path}': the extension must be one of "
                         f"{', '.join('.' + e for e in known)}")
    for subtype in ("FLOAT", "PCM_24"):
        if sf.check_format(fmt, subtype):
            return fmt, subtype
    return fmt, sf.default_subtype(fmt)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_generate_args(args: argparse.Namespace) -> tuple[str, str]:
    """Everything about `generate`'s options that can be checked before the model loads (the
    parser checked each number's range): inputs exist and can be read, --steps is within the
    bundle's range, and the output is a new file (or --force)
    of a known audio type in a writable folder that is none of the inputs. Returns the
    output's (format, subtype)."""
    from sideman.data.audio import check_readable

    inputs = [("--context", p) for p in args.context or ()]
    inputs += [(name, getattr(args, attr)) for name, attr in (("--style-audio", "style_audio"),
                                                               ("--variation-of", "variation_of"))
               if getattr(args, attr)]
    for name, path in inputs:
        check_readable(path, f"{name} {path}")
    check_steps(args.steps, args.bundle)
    out = args.output
    if out.is_dir() or str(out).endswith(("/", os.sep)):
        raise ValueError(f"-o {out} is a folder; name the audio file to write, e.g. {out / 'stem.wav'}")
    kind = output_format(out)
    for name, path in inputs:
        if _same_file(out, path):
            raise ValueError(f"-o {out} is the input {name} {path}; refusing to overwrite an input")
    if out.exists() and not args.force:
        raise ValueError(f"-o {out} already exists; pass --force to overwrite it")
    folder = out.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write -o {out}: {folder} is not a writable folder")
    return kind


def _generate(args: argparse.Namespace) -> int:
    fmt, subtype = check_generate_args(args)  # before the model loads and the compute is spent

    import numpy as np
    import soundfile as sf

    from sideman.commands.options import progress_bar
    from sideman.data.audio import load_input
    from sideman.data.files import atomic_writer
    from sideman.defaults import default_bundle
    from sideman.plugin_host.engine import Controls, OnnxEngine
    from sideman.plugin_host.engine_api import GenerationSettings
    from sideman.plugin_host.postprocess import set_loudness

    context = _read_context(args.context) if args.context else None
    style = load_input(args.style_audio, "--style-audio") if args.style_audio else None
    variation = load_input(args.variation_of, "--variation-of") if args.variation_of else None
    engine = OnnxEngine(args.bundle or default_bundle(), intra_threads=args.threads, precision=args.precision)
    seconds = args.seconds or (context.shape[1] / engine.sample_rate if context is not None else 10.0)
    if seconds > MAX_GENERATE_SECONDS:
        raise ValueError(f"the context is {seconds:.0f} s long; pass --seconds (at most {MAX_GENERATE_SECONDS:g})")
    settings = GenerationSettings(
        prompt=args.prompt or "", style_audio=style,
        seed=args.seed, steps=engine.default_steps if args.steps is None else args.steps,
        guidance_context=args.guidance[0], guidance_clap=args.guidance[1])
    controls = Controls(take=variation, strength=args.strength, keep=tuple(args.keep or ()), loop=args.loop,
                        clap_mix=args.clap_mix)
    bar = progress_bar(settings.steps, args.quiet)
    stem = engine.generate(context, seconds, settings, bar, controls)
    bar.close()
    if not np.isfinite(stem).all():
        raise ValueError("the model produced NaN or infinite samples; nothing written")
    stem = set_loudness(stem, context, engine.sample_rate, args.loudness)
    with atomic_writer(args.output) as f:  # an existing file stays whole until the new one is complete
        sf.write(f, np.ascontiguousarray(stem.T), engine.sample_rate, format=fmt, subtype=subtype)
    print(f"wrote {args.output} ({stem.shape[1] / engine.sample_rate:.2f} s, seed {args.seed})")
    return 0


def register(sub) -> None:
    presets = sub.add_parser("presets", help="list model presets with parameter counts")
    presets.set_defaults(func=_presets)

    export = sub.add_parser("export", help="write a model bundle (ONNX files + manifest)")
    export.add_argument("--autoencoder", required=True,
                        help="the codec: an autoencoder file, or 'band' / 'band:FRAMES' (the band codec)")
    export.add_argument("--dit", type=Path, required=True, help="C-DiT file (models.dit_checkpoint)")
    export.add_argument("--clap", type=Path, help="house CLAP file (text prompts, style audio)")
    export.add_argument("--bridge", type=Path, help="CLAP bridge file")
    export.add_argument("--conditioning-from", type=Path,
                        help="or take the CLAP towers and the bridge of this bundle as they are (a DiT trained "
                             "on its CLAP embeddings)")
    export.add_argument("--dit-fp16-weights", action="store_true",
                        help="store the DiT step's weights as float16 (half the file, float32 arithmetic)")
    export.add_argument("--out", type=Path, required=True, help='folder the bundle is written into')
    export.add_argument("--name", default="sideman",
                        help="the bundle's name, kept in its manifest (default: sideman)")
    export.add_argument("--fp16", action="store_true", help="also write fp16 variants for GPUs")
    export.add_argument("--int8", action="store_true",
                        help="also write int8 variants for CPUs (dynamic quantisation; `generate --precision int8`)")
    export.add_argument("--decode-steps", type=int, default=2, choices=(1, 2),
                        help="the engine's decoding steps (2: M2L2's two-step decoding)")
    export.add_argument("--decode-mode", default="sequential", choices=("sequential", "parallel"),
                        help="the engine's default decoding: chunk by chunk (M2L2), or all chunks batched (fewer GPU launches)")
    export.add_argument("--no-check", action="store_true", help="skip the PyTorch/ONNX parity check")
    export.set_defaults(func=_export)

    figures = sub.add_parser("bundle-figures", help="put held-out figures from `sideman eval` into a bundle's "
                                                    "manifest (`sideman demo` prints them)")
    figures.add_argument("--bundle", type=Path, required=True, help="the bundle folder")
    figures.add_argument("--eval", type=Path, required=True, help="a `sideman eval` output folder of that bundle")
    figures.add_argument("--text-control", type=Path, help="its text_control.json (role control by prompt)")
    figures.add_argument("--speed", type=Path, help="a speed.json ({\"rtf\": ...}) of the bundle")
    figures.add_argument("--inputs", default="ctx+clap_b",
                         help="the evaluation's inputs to report (default: ctx+clap_b, context and a prompt "
                              "through the bridge, the plugin's path)")
    figures.set_defaults(func=_bundle_figures)

    gen = sub.add_parser("generate", help="generate a stem for a context from the command line")
    gen.add_argument("--context", type=Path, nargs="+", help="a mix, or several stems to mix")
    gen.add_argument("--prompt", help="text prompt, e.g. 'warm upright bass'")
    gen.add_argument("--style-audio", type=Path, help="audio reference for the CLAP condition")
    add_number(gen, "--clap-mix", kind=float, low=0, high=1, default=0.5,
               help="with both a prompt and a style reference: 0 = prompt, 1 = style")
    gen.add_argument("--steps", type=int, help="sampling steps, within 1..the bundle's max_steps "
                                               "(default bundle: 1..8; default: the bundle's, 5)")
    add_number(gen, "--seed", low=0, default=0, help="seed of the noise: the same seed gives the same stem")
    add_number(gen, "--guidance", kind=float, low=0, high=10, nargs=2, default=(1.25, 1.25),
               metavar=("CONTEXT", "CLAP"), help="classifier-free guidance weights of the context and "
                                                 "of the CLAP condition (default: 1.25 1.25)")
    add_number(gen, "--seconds", kind=float, low=0, above=True, high=MAX_GENERATE_SECONDS, unit="s",
               help="length (default: the context's, else 10)")
    gen.add_argument("--variation-of", type=Path, help="a previous take to vary")
    add_number(gen, "--strength", kind=float, low=0, high=1, default=1.0,
               help="variation strength: 0 = the take, 1 = a fresh stem")
    gen.add_argument("--keep", type=_parse_keep, action="append", metavar="START:END",
                     help="seconds of --variation-of kept exactly (inpainting); repeatable")
    gen.add_argument("--loop", action="store_true", help="make the stem loop seamlessly")
    add_loudness_option(gen)
    gen.add_argument("--bundle", type=Path, help="model bundle (default: the embedded one)")
    add_number(gen, "--threads", low=0, default=0, help="onnxruntime threads (0: all cores)")
    gen.add_argument("--precision", default="auto", choices=PRECISIONS,
                     help=PRECISION_HELP)
    gen.add_argument("-o", "--output", type=Path, required=True,
                     help=f"the stem to write ({', '.join('.' + e for e in OUTPUT_FORMATS)}); never one of the inputs")
    gen.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    gen.set_defaults(func=_generate)
