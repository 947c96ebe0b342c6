"""Time one DiT forward pass (fp32, CPU by default) against the machine's matmul throughput.

    python bench/dit_forward.py [--preset paper] [--frames 117] [--device cpu]

Prints: the achieved GFLOP/s of a large fp32 ``torch.matmul``; the time of one forward
pass of the DiT for batch 1, 2 (the guidance pair of the default CFG) and 3 (three-pass
CFG) on a ``frames``-long sequence (117 frames = 10 s) with its analytic FLOP count and
achieved GFLOP/s; and the wall time of EDM Heun sampling (30 steps = 59 evaluations) and
of 5-step consistency sampling, both with the guidance pair, and their ratio (run on
``--sampling-preset``, 'small' by default to stay under two minutes on a CPU; the paper
preset's sampling time is estimated from its measured forward time). Times are the best
of several runs, so that other processes on a shared machine disturb them less.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from sideman.models.consistency import ConsistencyPrecond
from sideman.models.dit import PRESETS, DiT, DiTConfig
from sideman.models.edm import EDMPrecond
import numpy as np

from sideman.models.sampling import step_function
from sideman.numerics.guidance import karras_levels
from sideman.numerics.sampler import GuidedConsistency, SamplerSettings, heun, sample_latents


def dit_flops(cfg: DiTConfig, frames: int, batch: int) -> float:
    """Analytic FLOPs (a multiply-add counts 2) of one forward pass."""
    n = math.ceil(frames / cfg.patch_size)
    d, c, p, h = cfg.width, cfg.latent_channels, cfg.patch_size, int(cfg.width * cfg.mlp_ratio)
    per_token_block = 2 * (3 * d * d + 3 * d * cfg.qkv_conv_kernel + d * d + 2 * d * h)
    attention = 2 * 2 * n * n * d
    per_sample = (2 * n * 2 * c * p * d
                  + cfg.depth * (n * per_token_block + attention + 2 * cfg.cond_dim * 6 * d)
                  + 2 * cfg.cond_dim * 2 * d + 2 * n * d * p * c
                  + 2 * (cfg.noise_embed_dim * cfg.cond_dim + cfg.cond_dim ** 2)
                  + 2 * (cfg.clap_dim * cfg.cond_dim + cfg.cond_dim ** 2))
    return batch * per_sample


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, reps: int, device: torch.device) -> float:
    """Best wall time over ``reps`` runs after one warm-up run, in seconds."""
    fn()
    sync(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / best_time(lambda: torch.matmul(a, b), reps, device) / 1e9


def random_dit(cfg: DiTConfig, device: torch.device) -> DiT:
    """A DiT with its zero-initialised parts perturbed (no trivially zero outputs)."""
    net = DiT(cfg).to(device).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net


class Timed(torch.nn.Module):
    """Wraps a preconditioned model and records the wall time of every call."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model, self.device, self.times = model, device, []

    @property
    def net(self) -> DiT:
        return self.model.net

    def forward(self, *args, **kwargs):
        sync(self.device)
        t = time.perf_counter()
        out = self.model(*args, **kwargs)
        sync(self.device)
        self.times.append(time.perf_counter() - t)
        return out


def forward_benchmark(cfg: DiTConfig, name: str, frames: int, device: torch.device,
                      reps: int, peak: float) -> float:
    """Prints the forward time for batch 1, 2, 3; returns the batch-2 time in seconds."""
    net = random_dit(cfg, device)
    params = sum(p.numel() for p in net.parameters())
    print(f"DiT '{name}': {params / 1e6:.1f}M parameters, {frames} frames, fp32")
    times = {}
    for batch in (1, 2, 3):
        x = torch.randn(batch, cfg.latent_channels, frames, device=device)
        ctx, clap = torch.randn_like(x), torch.randn(batch, cfg.clap_dim, device=device)
        c_noise = torch.zeros(batch, device=device)
        with torch.no_grad():
            times[batch] = t = best_time(lambda: net(x, c_noise, ctx, clap), reps, device)
        flops = dit_flops(cfg, frames, batch)
        print(f"  forward batch {batch}: {t * 1e3:8.1f} ms  {flops / 1e9:6.1f} GFLOP  "
              f"{flops / t / 1e9:6.1f} GFLOP/s ({100 * flops / t / 1e9 / peak:.0f}% of matmul)")
    return times[2]


def sampling_benchmark(cfg: DiTConfig, name: str, frames: int, device: torch.device) -> None:
    """Best wall time of both samplers with the guidance pair (CFG 1.25 / 1.25)."""
    net = random_dit(cfg, device)
    ctx = torch.randn(1, cfg.latent_channels, frames, device=device)
    clap = torch.nn.functional.normalize(torch.randn(1, cfg.clap_dim, device=device), dim=-1)
    print(f"sampling with DiT '{name}', {frames} frames, guidance pair (batch 2 per evaluation)")
    walls = []
    for label, wrapper, steps, repeats in (("EDM Heun 30 steps", EDMPrecond, 30, 2),
                                           ("consistency 5 steps", ConsistencyPrecond, 5, 5)):
        timed = Timed(wrapper(net), device)
        f = GuidedConsistency(step_function(timed), ctx.cpu().numpy(), clap.cpu().numpy(), 1.25, 1.25,
                              (cfg.latent_channels, frames), cfg.clap_dim)
        shape = (1, cfg.latent_channels, frames)
        runs = []
        for _ in range(repeats):
            timed.times.clear()
            t = time.perf_counter()
            rng = np.random.default_rng(0)
            if wrapper is ConsistencyPrecond:
                sample_latents(f, shape, SamplerSettings(steps=steps), rng)
            else:
                levels = karras_levels(steps)
                heun(f, levels[0] * rng.standard_normal(shape, dtype=np.float32), levels)
            sync(device)
            runs.append(time.perf_counter() - t)
        walls.append(min(runs))
        print(f"  {label}: {len(timed.times)} evaluations, best wall of {repeats} runs "
              f"{min(runs):.3f} s (fastest evaluation {min(timed.times) * 1e3:.1f} ms)")
    print(f"  time ratio EDM / consistency: {walls[0] / walls[1]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--frames", type=int, default=117)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sampling-preset", default="small", choices=sorted(PRESETS),
                        help="DiT used for the end-to-end sampler timing")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    peak = matmul_gflops(device)
    print(f"fp32 matmul 2048x2048: {peak:.1f} GFLOP/s")
    t_pair = forward_benchmark(PRESETS[args.preset], args.preset, args.frames, device,
                               args.reps, peak)
    print(f"  estimate for '{args.preset}' with the guidance pair: EDM 59 x {t_pair:.2f} s = "
          f"{59 * t_pair:.1f} s, consistency 5 x {t_pair:.2f} s = {5 * t_pair:.1f} s (11.8x)")
    sampling_benchmark(PRESETS[args.sampling_preset], args.sampling_preset, args.frames, device)


if __name__ == "__main__":
    main()
