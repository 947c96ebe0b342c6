"""Compare DiT presets by held-out EDM loss per CPU-hour, from the val.csv of their runs.

    python bench/dit_presets.py RUN [RUN ...] [--at HOURS] [--png OUT.png]

Each RUN is a `sideman train dit --val-pairs ...` output folder (its edm/val.csv holds the
held-out loss after every --val-every steps with the process CPU hours spent). Prints per
run: steps and CPU hours reached, CPU seconds per step, the final held-out loss, and the
loss interpolated at --at CPU hours (default: the smallest CPU time every run reached), so
runs that took different numbers of steps compare at one budget. --png draws loss against
CPU hours and against steps for every run. runs/presets/run.sh made the comparison in
docs/dit.md.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def read_run(folder: Path) -> dict:
    path = folder / "edm" / "val.csv"
    if not path.is_file():
        raise SystemExit(f"{folder}: no edm/val.csv (train with --val-pairs)")
    rows = list(csv.DictReader(open(path)))
    if not rows:
        raise SystemExit(f"{path} is empty")
    return {"name": folder.name, "step": np.array([int(r["step"]) for r in rows]),
            "hours": np.array([float(r["cpu_hours"]) for r in rows]),
            "loss": np.array([float(r["loss"]) for r in rows]),
            "sem": np.array([float(r["sem"]) for r in rows])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="train dit output folders")
    ap.add_argument("--at", type=float, default=None, help="CPU hours to compare at")
    ap.add_argument("--png", type=Path, default=None, help="picture of the curves")
    args = ap.parse_args()
    runs = [read_run(r) for r in args.runs]
    at = args.at if args.at is not None else min(r["hours"][-1] for r in runs)
    print(f"{'run':14s} {'steps':>6s} {'CPU h':>6s} {'CPU s/step':>10s} {'final loss':>14s} "
          f"{f'loss @ {at:.3f} h':>15s}")
    for r in runs:
        per_step = r["hours"][-1] * 3600 / r["step"][-1]
        interp = np.interp(at, r["hours"], r["loss"]) if r["hours"][0] <= at <= r["hours"][-1] else float("nan")
        print(f"{r['name']:14s} {r['step'][-1]:6d} {r['hours'][-1]:6.3f} {per_step:10.2f} "
              f"{r['loss'][-1]:8.4f}±{r['sem'][-1]:.3f} {interp:15.4f}")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for r in runs:
            axes[0].plot(r["hours"], r["loss"], marker=".", lw=1, label=r["name"])
            axes[1].plot(r["step"], r["loss"], marker=".", lw=1, label=r["name"])
        axes[0].axvline(at, color="0.6", lw=0.8, ls="--")
        axes[0].set_xlabel("process CPU hours")
        axes[1].set_xlabel("optimiser steps (batch 16)")
        axes[0].set_ylabel("held-out EDM loss")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[1].legend()
        fig.suptitle("DiT presets on the band codec's latents")
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
        print(f"picture: {args.png}")


if __name__ == "__main__":
    main()
