"""`sideman codec`: the spectral codec (models.spectral_codec): train it, and measure whether
it keeps the notes (basic-pitch note-F1 of held-out stems and mixes) beside other codecs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sideman.commands.options import add_dataclass_options, from_options


def _train(args: argparse.Namespace) -> int:
    from sideman.training.codec_training import train_codec
    from sideman.training.stages import CodecStage

    path = train_codec(args.data, args.out, from_options(CodecStage, args), progress=not args.quiet,
                       stop_after=args.stop_after)
    print(f"checkpoint: {path}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    args.band_pool = [4] if args.band_pool is None else args.band_pool
    if any(p < 1 for p in args.band_pool):
        raise ValueError("--band-pool must be at least 1")
    from sideman.evaluation.codec_eval import (band_codec_system, bundle_system, evaluate_codecs, example_pictures, held_out_clips,
                                               markdown, phase_oracle_system, resample_system, spectral_codec_system,
                                               to_json)

    systems = {(Path(c).parent.name or str(c)) + ("" if args.weights == "ema" else f" ({args.weights} weights)"):
               spectral_codec_system(Path(c), args.weights) for c in args.checkpoint}
    for pool in args.band_pool:
        systems[f"band codec (hop {512 * pool})"] = band_codec_system(pool)
    for bundle in args.bundle:
        systems[f"bundle {Path(bundle).name}"] = bundle_system(Path(bundle))
    systems["48-24-48 kHz round trip"] = resample_system()
    systems["ceiling: input magnitudes, phase from peaks"] = phase_oracle_system()
    systems["ceiling: input magnitudes, true phase advance"] = phase_oracle_system(from_peaks=False)
    clips = held_out_clips(args.data, per_role=args.per_role, seed=args.seed)
    if not clips:
        raise ValueError(f"no held-out clips in {args.data}")
    results = evaluate_codecs(systems, clips, seed=args.seed, progress=not args.quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    (args.out / "codec_eval.md").write_text(text + "\n")
    (args.out / "codec_eval.json").write_text(json.dumps(to_json(results), indent=1))
    first = next(iter(systems))
    example_pictures(systems[first], clips, args.out, first)
    print(text)
    print(f"report: {args.out / 'codec_eval.md'}; pictures: {args.out}/codec_<kind>.png")
    return 0


def register(sub) -> None:
    codec = sub.add_parser("codec", help="the spectral codec: train, and measure the notes it keeps")
    actions = codec.add_subparsers(dest="action", required=True)
    t = actions.add_parser("train", help="train a spectral codec (resumes from OUT/checkpoint.pt)")
    t.add_argument("--data", type=Path, required=True, help="multitrack data set (any layout)")
    t.add_argument("--out", type=Path, required=True, help="run folder: checkpoint.pt, log.csv")
    t.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this many steps of this run")
    from sideman.training.stages import CodecStage

    add_dataclass_options(t, CodecStage)
    t.set_defaults(func=_train)
    e = actions.add_parser("eval", help="note-F1, note share, log-mel L1, MR-STFT of held-out clips")
    e.add_argument("checkpoint", nargs="*", type=Path, help="spectral codec checkpoints")
    e.add_argument("--bundle", action="append", default=[], type=Path, help="also a bundle's autoencoder")
    e.add_argument("--band-pool", action="append", type=int, default=None, metavar="FRAMES",
                   help="also the band codec with this many 512-sample frames per latent (repeatable; default: 4)")
    e.add_argument("--data", type=Path, required=True, help="multitrack data set; its held-out songs are measured")
    e.add_argument("--out", type=Path, required=True, help="report folder: codec_eval.md and .json, pictures")
    e.add_argument("--per-role", type=int, default=6, help="clips per pitched role (and as many mixes)")
    e.add_argument("--weights", choices=("ema", "model"), default="ema",
                   help="a checkpoint's EMA weights (exported) or its current weights (default: ema)")
    e.add_argument("--seed", type=int, default=0, help="seed of the clip choice and the bootstrap (default: 0)")
    e.set_defaults(func=_eval)
