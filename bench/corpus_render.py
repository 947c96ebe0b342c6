"""Benchmark: how many times faster than real time the corpus renders on this machine.

    python bench/corpus_render.py [--songs 8] [--seconds 30] [--jobs N]

Prints song-seconds per wall-second (the real-time factor) and stem-seconds per second.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from sideman.data.corpus import render_corpus
from sideman.data.fluidsynth import find_soundfont
from sideman.data.instruments import ROLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--soundfont", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sideman-bench-") as out:
        report = render_corpus(args.songs, args.seconds, seed=1234, out=out, jobs=args.jobs,
                               soundfont=args.soundfont, progress=False)
    assert not report.failed, report.failed
    print(f"cores: {os.cpu_count()}, jobs: {args.jobs}, soundfont: {find_soundfont(args.soundfont).name}")
    print(f"rendered {args.songs} songs x {args.seconds:.0f} s ({len(ROLES)} stems each) "
          f"in {report.wall_seconds:.1f} s")
    print(f"real-time factor: {report.realtime_factor:.1f}x faster than real time (song audio)")
    print(f"stem audio: {report.realtime_factor * len(ROLES):.1f} stem-seconds per second")


if __name__ == "__main__":
    main()
