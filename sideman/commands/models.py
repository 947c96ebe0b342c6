"""Model commands: presets, export of a bundle, offline generation with a bundle."""
from __future__ import annotations

import argparse
from pathlib import Path

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

    out = export_bundle(args.out, load_autoencoder(args.autoencoder), load_dit(args.dit),
                        HouseClap.load(args.clap) if args.clap else None,
                        ClapBridge.load(args.bridge) if args.bridge else None,
                        name=args.name, fp16=args.fp16, int8=args.int8, check=not args.no_check,
                        decode_mode=args.decode_mode, decode_steps=args.decode_steps,
                        training={"autoencoder": str(args.autoencoder), "dit": str(args.dit),
                                  "clap": str(args.clap or ""), "bridge": str(args.bridge or "")})
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"bundle written to {out} ({size:.1f} MB)")
    return 0


def _read_context(paths: list[Path]):
    """One file, or several stems mixed by summing (all read at 48 kHz stereo)."""
    import numpy as np

    from sideman.data.audio import load_audio

    clips = [load_audio(p) for p in paths]
    n = max(c.shape[1] for c in clips)
    mix = np.zeros((2, n), np.float32)
    for c in clips:
        mix[:, :c.shape[1]] += c
    return mix


def _parse_keep(spec: str) -> tuple[float, float]:
    start, sep, end = spec.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"--keep takes START:END in seconds, got '{spec}'")
    return float(start), float(end)


def _generate(args: argparse.Namespace) -> int:
    import soundfile as sf
    from tqdm import tqdm

    from sideman.data.audio import load_audio
    from sideman.defaults import default_bundle
    from sideman.plugin_host.engine import Controls, OnnxEngine
    from sideman.plugin_host.engine_api import GenerationSettings

    engine = OnnxEngine(args.bundle or default_bundle(), intra_threads=args.threads, precision=args.precision)
    context = _read_context(args.context) if args.context else None
    seconds = args.seconds or (context.shape[1] / engine.sample_rate if context is not None else 10.0)
    settings = GenerationSettings(
        prompt=args.prompt or "", style_audio=load_audio(args.style_audio) if args.style_audio else None,
        seed=args.seed, steps=args.steps or engine.default_steps,
        guidance_context=args.guidance[0], guidance_clap=args.guidance[1])
    controls = Controls(take=load_audio(args.variation_of) if args.variation_of else None,
                        strength=args.strength, keep=tuple(args.keep or ()), loop=args.loop,
                        clap_mix=args.clap_mix)
    bar = tqdm(total=settings.steps + 1, desc="generating", unit="step", disable=args.quiet)

    def progress(step: int, total: int) -> None:
        bar.update(step - bar.n)

    stem = engine.generate(context, seconds, settings, progress, controls)
    bar.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.output, stem.T, engine.sample_rate, subtype="FLOAT")
    print(f"wrote {args.output} ({stem.shape[1] / engine.sample_rate:.2f} s, seed {args.seed})")
    return 0


def register(sub) -> None:
    presets = sub.add_parser("presets", help="list model presets with parameter counts")
    presets.set_defaults(func=_presets)

    export = sub.add_parser("export", help="write a model bundle (ONNX files + manifest)")
    export.add_argument("--autoencoder", type=Path, required=True, help="autoencoder file")
    export.add_argument("--dit", type=Path, required=True, help="C-DiT file (models.dit_checkpoint)")
    export.add_argument("--clap", type=Path, help="house CLAP file (text prompts, style audio)")
    export.add_argument("--bridge", type=Path, help="CLAP bridge file")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--name", default="sideman")
    export.add_argument("--fp16", action="store_true", help="also write fp16 variants for GPUs")
    export.add_argument("--int8", action="store_true",
                        help="also write int8 variants for CPUs (dynamic quantisation; `generate --precision int8`)")
    export.add_argument("--decode-steps", type=int, default=2, choices=(1, 2),
                        help="the engine's decoding steps (2: M2L2's two-step decoding)")
    export.add_argument("--decode-mode", default="sequential", choices=("sequential", "parallel"),
                        help="the engine's default decoding: chunk by chunk (M2L2), or all chunks batched (fewer GPU launches)")
    export.add_argument("--no-check", action="store_true", help="skip the PyTorch/ONNX parity check")
    export.set_defaults(func=_export)

    gen = sub.add_parser("generate", help="generate a stem for a context from the command line")
    gen.add_argument("--context", type=Path, nargs="+", help="a mix, or several stems to mix")
    gen.add_argument("--prompt", help="text prompt, e.g. 'warm upright bass'")
    gen.add_argument("--style-audio", type=Path, help="audio reference for the CLAP condition")
    gen.add_argument("--clap-mix", type=float, default=0.5,
                     help="with both a prompt and a style reference: 0 = prompt, 1 = style")
    gen.add_argument("--steps", type=int, help="sampling steps (default: the bundle's, 5)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--guidance", type=float, nargs=2, default=(1.25, 1.25), metavar=("CONTEXT", "CLAP"))
    gen.add_argument("--seconds", type=float, help="length (default: the context's, else 10)")
    gen.add_argument("--variation-of", type=Path, help="a previous take to vary")
    gen.add_argument("--strength", type=float, default=1.0, help="variation strength 0..1")
    gen.add_argument("--keep", type=_parse_keep, action="append", metavar="START:END",
                     help="seconds of --variation-of kept exactly (inpainting); repeatable")
    gen.add_argument("--loop", action="store_true", help="make the stem loop seamlessly")
    gen.add_argument("--bundle", type=Path, help="model bundle (default: the embedded one)")
    gen.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    gen.add_argument("--precision", default="auto", choices=PRECISIONS,
                     help=PRECISION_HELP)
    gen.add_argument("-o", "--output", type=Path, required=True)
    gen.set_defaults(func=_generate)
