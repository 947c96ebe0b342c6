"""`sideman eval`: Table-1 metrics of a model bundle, or of several variants side by side."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


def _protocol(args: argparse.Namespace):
    from sideman.evaluation.evaluate import PRESETS

    proto = PRESETS[args.preset]
    overrides = {"n_batches": args.batches, "batch_size": args.batch_size, "n_ref": args.references,
                 "pca": args.pca}
    return replace(proto, **{k: v for k, v in overrides.items() if v is not None})


def _variants(args: argparse.Namespace) -> list:
    from sideman.evaluation.evaluate import Variant, load_variants, parse_variant

    if args.bundle is not None:
        return [Variant("bundle", args.bundle, args.steps)]
    if len(args.compare) == 1 and Path(args.compare[0]).suffix.lower() in (".json", ".yaml", ".yml"):
        return load_variants(Path(args.compare[0]))
    return [parse_variant(text, args.steps) for text in args.compare]


def _eval(args: argparse.Namespace) -> int:
    from sideman.evaluation.evaluate import EvalConfig, evaluate, parse_settings

    config = EvalConfig(protocol=_protocol(args), seconds=args.seconds, clap_seconds=args.clap_seconds,
                        seed=args.seed, split=args.split, layout=args.layout, chunk=args.chunk,
                        bounds=not args.no_bounds, notes=not args.no_notes, spaces=tuple(args.space))
    settings = parse_settings(args.settings) if args.settings else None
    report = evaluate(args.data, _variants(args), args.out, config, settings, args.embedder,
                      args.clap_model, args.resume, progress=not args.quiet, threads=args.threads)
    print(report.markdown())
    print(f"report: {args.out / 'report.md'}, {args.out / 'report.csv'}, {args.out / 'results.json'}",
          file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="Table-1 metrics (KD, FAD, Cov, Den, APA, CS) of a bundle, with bounds",
        description="Generate stems for every conditioning setting on a data set's split, embed them "
                    "with CLAP and report KD, FAD, Coverage, Density, APA, CS_AA and CS_TA (mean ± std "
                    "over batches) with the real, white-noise and random-pairing bounds.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--bundle", type=Path, help="the model bundle to evaluate")
    which.add_argument("--compare", nargs="+", metavar="NAME=BUNDLE[:STEPS[:SETTINGS]]",
                       help="variants side by side (or one .json/.yaml spec file), with the wall "
                            "time per second of generated audio")
    p.add_argument("--data", type=Path, required=True, help="multitrack data set (any layout)")
    p.add_argument("--layout", default="auto", choices=("auto", "corpus", "musdb", "slakh", "folder"),
                   help='how the data folder is laid out (default: auto)')
    p.add_argument("--split", default="validation", choices=("validation", "train", "all"),
                   help='which songs are measured (default: validation)')
    p.add_argument("--embedder", default="house", choices=("house", "laion"),
                   help="metric CLAP; 'house' without --clap-model uses the bundle's own towers")
    p.add_argument("--clap-model", type=Path, help="house CLAP checkpoint, or the LAION music .pt")
    p.add_argument("--settings", help="comma-separated settings (default: all the bundle supports): "
                                      "ctx+clap_a,ctx+clap_t,ctx+clap_b,ctx,clap_a,clap_t,clap_b,uncond,"
                                      "ctx+clap_a*,clap_a*")
    p.add_argument("--no-bounds", action="store_true", help="leave out the real/noise/random rows")
    p.add_argument("--no-notes", action="store_true",
                   help="skip the note-level figures (basic-pitch transcriptions of every stem and context)")
    p.add_argument("--space", action="append", default=[], choices=("musicnn",),
                   help="also compute KD, FAD, Cov, Den and APA in this embedding space (repeatable)")
    p.add_argument("--pca", type=int,
                   help="compare embeddings in their top PCA axes of the references (for sets not much "
                        "larger than the embedding's dimension)")
    p.add_argument("--preset", default="paper", choices=("paper", "quick", "tiny"),
                   help="paper: 5 x 1000 vs 5000 references; quick: 3 x 200 vs 1000; tiny: 2 x 6 vs 16")
    p.add_argument("--batches", type=int, help="number of candidate batches (overrides the preset)")
    p.add_argument("--batch-size", type=int, help="candidates per batch (overrides the preset)")
    p.add_argument("--references", type=int, help="size of the reference set (overrides the preset)")
    p.add_argument("--seconds", type=float, default=10.0, help="window and generation length")
    p.add_argument("--clap-seconds", type=float, help="CLAP segment length (default: --seconds)")
    p.add_argument("--steps", type=int, default=5, help="sampling steps (default 5)")
    p.add_argument("--seed", type=int, default=0, help='seed of the window choice and generation (default: 0)')
    p.add_argument("--chunk", type=int, default=16, help="items generated and embedded per call")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    p.add_argument("--out", type=Path, required=True, help="folder for the report and its cache")
    p.add_argument("--resume", action="store_true",
                   help="continue an earlier run from its cache in OUT (without it, that cache is discarded)")
    p.set_defaults(func=_eval)
