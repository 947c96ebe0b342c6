"""Data commands: the demo, the synthetic corpus, data set checks, training pairs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sideman.commands.options import add_number

DEMO_SEED = 20261125  # far from the seeds of training corpora (0, 1, ...)


def _corpus_render(args: argparse.Namespace) -> int:
    from sideman.data.corpus import render_corpus

    report = render_corpus(args.songs, args.seconds, args.seed, args.out, jobs=args.jobs,
                           soundfont=args.soundfont, progress=not args.quiet)
    print(f"{len(report.rendered)} songs rendered, {len(report.skipped)} already present, "
          f"{len(report.failed)} failed, in {report.out}")
    if report.rendered:
        print(f"render speed: {report.realtime_factor:.1f}x real time "
              f"({report.seconds_of_audio:.0f} s of songs in {report.wall_seconds:.1f} s)")
    for name, reason in report.failed.items():
        print(f"  failed {name}: {reason}", file=sys.stderr)
    return 1 if report.failed and not (report.rendered or report.skipped) else 0


def _data_check(args: argparse.Namespace) -> int:
    from sideman.data.layouts import read_multitrack

    data = read_multitrack(args.path, args.layout, progress=not args.quiet)
    print(data.report())
    return 0 if data.songs else 1


def pair_sampler(path: Path, layout: str, seconds: float, clap_seconds: float, seed: int,
                 split: str, quiet: bool):
    from sideman.data.layouts import read_multitrack
    from sideman.data.pairs import PairConfig, PairSampler

    data = read_multitrack(path, layout, progress=not quiet)
    for problem in data.problems:
        print(problem, file=sys.stderr)
    return PairSampler(data, PairConfig(seconds=seconds, clap_seconds=clap_seconds, seed=seed), split)


def _pairs_write(args: argparse.Namespace) -> int:
    from sideman.data.pairs import write_pairs

    sampler = pair_sampler(args.data, args.layout, args.seconds, args.clap_seconds, args.seed,
                           args.split, args.quiet)
    folders = write_pairs(sampler, args.count, args.out)
    print(f"wrote {len(folders)} training pairs to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sideman.data.corpus import render_corpus
    from sideman.data.pairs import write_pairs
    from sideman.data.plots import plot_pair

    out = Path(args.out)
    report = render_corpus(1, args.seconds, DEMO_SEED, out / "song", progress=False)
    if report.failed:
        print(f"the demo song failed to render: {report.failed}", file=sys.stderr)
        return 1
    sampler = pair_sampler(out / "song", "corpus", 10.0, 5.0, 0, "all", True)
    folders = write_pairs(sampler, args.pairs, out / "pairs")
    image = plot_pair(sampler.sample(0), out / "pair_0000.png")
    print(f"demo song (stems, mix, MIDI, tags): {out / 'song' / 'song_00000'}")
    print(f"training pairs (target, context, CLAP segment, caption): {out / 'pairs'} "
          f"({len(folders)} pairs)")
    print(f"spectrograms of the first pair: {image}")
    return 0


def register(sub) -> None:
    corpus = sub.add_parser("corpus", help="the synthetic multitrack corpus").add_subparsers(
        dest="action", required=True)
    demo = corpus.add_parser("demo", help="render one song and write training pairs from it, with a picture")
    demo.add_argument("--out", type=Path, default=Path("sideman-corpus-demo"),
                      help='folder to write into (default: sideman-corpus-demo)')
    add_number(demo, "--seconds", kind=float, low=4, high=600, unit="s", default=30.0,
               help='length of the song (default: 30)')
    add_number(demo, "--pairs", low=1, high=1000, default=4, help='training pairs written from it (default: 4)')
    demo.set_defaults(func=_demo)
    render = corpus.add_parser("render", help="compose and render songs, one stem per role")
    add_number(render, "--songs", low=1, high=1_000_000, required=True, help='songs to render')
    add_number(render, "--seconds", kind=float, low=4, high=600, unit="s", default=60.0,
               help='length of each song (default: 60)')
    add_number(render, "--seed", low=0, default=0, help='seed of the compositions (default: 0)')
    render.add_argument("--out", type=Path, required=True, help='corpus folder (resumes a partial one)')
    add_number(render, "--jobs", low=1, high=256, default=None, help="parallel songs (default: all cores)")
    render.add_argument("--soundfont", default=None, help="GM soundfont (default: Debian's FluidR3_GM)")
    render.set_defaults(func=_corpus_render)

    data = sub.add_parser("data", help="multitrack data sets").add_subparsers(dest="action", required=True)
    check = data.add_parser("check", help="read a data set and report unusable files")
    check.add_argument("path", type=Path, help="the data set's folder")
    check.add_argument("--layout", default="auto", choices=("auto", "corpus", "musdb", "slakh", "folder"),
                       help='how the folder is laid out (default: auto, detected)')
    check.set_defaults(func=_data_check)

    pairs = sub.add_parser("pairs", help="training pairs").add_subparsers(dest="action", required=True)
    write = pairs.add_parser("write", help="write pairs as WAV files for listening")
    write.add_argument("--data", type=Path, required=True, help="the data set's folder")
    write.add_argument("--out", type=Path, required=True, help='folder the pairs are written into')
    add_number(write, "--count", low=1, high=100_000, default=8, help='pairs to write (default: 8)')
    write.add_argument("--layout", default="auto",
                       help='how the data folder is laid out: auto, corpus, musdb, slakh or folder (default: auto)')
    add_number(write, "--seconds", kind=float, low=0, above=True, high=600, unit="s", default=10.0,
               help="length of each pair's audio (default: 10)")
    add_number(write, "--clap-seconds", kind=float, low=0, above=True, high=600, unit="s", default=10.0,
               help='length of the CLAP reference clip (default: 10)')
    add_number(write, "--seed", low=0, default=0, help='seed of the sampling (default: 0)')
    write.add_argument("--split", default="train", choices=("train", "validation", "all"),
                       help='which songs: the training split, the validation split or all (default: train)')
    write.set_defaults(func=_pairs_write)
