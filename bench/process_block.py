"""Benchmark: cost of the plugin's realtime work per block (take player + context capture).

    python bench/process_block.py [--blocks 20000] [--block-size 512] [--sample-rate 48000]
                                  [--crossfade 64] [--swap-every 1000]

Times TakePlayer::process + CaptureBuffer::push per block in C++ (steady clock and thread CPU
clock around the two calls, no Python in the loop) on a continuous 120 bpm transport looping over 8 bars, with a
take swap every --swap-every blocks (the swap itself runs outside the timed region, as it does
on the plugin's worker thread). Prints p50, p99, p99.9 and max against the block's duration; the CPU times tell
work from preemption on a loaded machine.
Needs the extension sideman.plugin_host._bridge (built by `pip install -e .`).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from sideman.plugin_host import _bridge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=20000)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--sample-rate", type=float, default=48000.0)
    parser.add_argument("--crossfade", type=int, default=64, help="crossfade samples at jumps and swaps")
    parser.add_argument("--swap-every", type=int, default=1000, help="blocks between take swaps (0: none)")
    args = parser.parse_args()

    _bridge.bench_process_block(blocks=1000, block_size=args.block_size, sample_rate=args.sample_rate,
                                crossfade_samples=args.crossfade, swap_every=0)  # warm caches and clocks
    times = _bridge.bench_process_block(blocks=args.blocks, block_size=args.block_size,
                                        sample_rate=args.sample_rate, crossfade_samples=args.crossfade,
                                        swap_every=args.swap_every)
    budget_us = args.block_size / args.sample_rate * 1e6
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {args.blocks} blocks of "
          f"{args.block_size} samples at {args.sample_rate / 1000:g} kHz (block duration {budget_us / 1000:.2f} ms), "
          f"crossfade {args.crossfade}, take swap every {args.swap_every} blocks")
    print("TakePlayer.process + Capture.push per block (wall clock; thread CPU time in brackets):")
    wall = times["wall_ns"].astype(np.float64) / 1000.0
    cpu = times["cpu_ns"].astype(np.float64) / 1000.0
    rows = [("p50", 50), ("p99", 99), ("p99.9", 99.9)]
    for name, q in rows:
        w, c = np.percentile(wall, q), np.percentile(cpu, q)
        print(f"  {name:>5}: {w:9.2f} us  ({100 * w / budget_us:6.3f} % of the block)   [cpu {c:8.2f} us]")
    print(f"    max: {wall.max():9.2f} us  ({100 * wall.max() / budget_us:6.3f} % of the block)   "
          f"[cpu {cpu.max():8.2f} us]")
    print(f"   mean: {wall.mean():9.2f} us  -> {budget_us / wall.mean():.0f}x faster than real time")
    preempted = int(((wall > 1000.0) & (cpu < 0.5 * wall)).sum())
    print(f"blocks over 1 ms of wall time: {int((wall > 1000.0).sum())}, of which {preempted} spent under half "
          f"of it on the CPU (preempted: the bench does not run at realtime priority)")


if __name__ == "__main__":
    main()
