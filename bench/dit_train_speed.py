"""Time one EDM training step of the DiT presets, fp32 against bf16 autocast, on a CPU.

    python bench/dit_train_speed.py [--presets small,medium,base] [--channels 287]
                                    [--frames 234] [--batch 16] [--repeats 5]

A step is what training.trainer.Trainer does: the EDM loss on a batch of random latents
(target, context, CLAP), backward, AdamW. Prints per preset and precision: parameters,
seconds per step (best of ``repeats`` after one warm-up, so that other processes disturb
it less), pairs per second, and the bf16 speed-up. The defaults are the band codec's
latents (287 channels, 234 frames = 10 s at hop 2048).
"""
from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from dataclasses import replace

import torch

from sideman.models.dit import PRESETS, DiT
from sideman.models.edm import DiTEDMObjective, EDMPrecond


def step_seconds(preset: str, channels: int, frames: int, batch: int, repeats: int,
                 bf16: bool, patch: int | None = None) -> tuple[int, float]:
    """(parameters, best seconds per optimiser step)."""
    torch.manual_seed(0)
    cfg = replace(PRESETS[preset], latent_channels=channels)
    cfg = replace(cfg, patch_size=patch or cfg.patch_size)
    model = EDMPrecond(DiT(cfg)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    objective = DiTEDMObjective()
    data = {"target": torch.randn(batch, channels, frames) * 0.5,
            "context": torch.randn(batch, channels, frames) * 0.5,
            "clap": torch.nn.functional.normalize(torch.randn(batch, 512), dim=-1)}
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss, _ = objective(model, data)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return sum(p.numel() for p in model.parameters()), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="small,medium,base", help="comma-separated DiT presets")
    ap.add_argument("--channels", type=int, default=287, help="latent channels")
    ap.add_argument("--frames", type=int, default=234, help="latent frames per pair")
    ap.add_argument("--batch", type=int, default=16, help="pairs per step")
    ap.add_argument("--patch", type=int, default=None, help="frames per token (default: the preset's)")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps (best is kept)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}, "
          f"{args.channels} channels x {args.frames} frames")
    print(f"{'preset':8s} {'params':>8s} {'fp32 s/step':>12s} {'bf16 s/step':>12s} "
          f"{'bf16 pairs/s':>13s} {'speed-up':>9s}")
    for preset in args.presets.split(","):
        n, fp32 = step_seconds(preset, args.channels, args.frames, args.batch, args.repeats, False, args.patch)
        _, bf16 = step_seconds(preset, args.channels, args.frames, args.batch, args.repeats, True, args.patch)
        print(f"{preset:8s} {n / 1e6:7.1f}M {fp32:12.3f} {bf16:12.3f} {args.batch / bf16:13.1f} "
              f"{fp32 / bf16:8.2f}x")


if __name__ == "__main__":
    main()
