"""Autoencoder codec benchmark: encode and decode long audio (3 minutes by default).

Prints the latent shape, that the decoded length equals the input length, encode and
decode times as multiples of real time, peak memory, and the seam figure: the mean squared
error within 1024 samples of a chunk border (every 12288 samples) divided by the mean
squared error elsewhere (1.0 = no seam).

    python bench/ae_codec.py                                  # random-init 'small', synthetic audio
    python bench/ae_codec.py --checkpoint /work/runs/ae_small/autoencoder.pt \\
        --audio song.flac --minutes 3 --steps 2 --threads 2
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from sideman.data.audio import SAMPLE_RATE, load_audio
from sideman.models.autoencoder import PRESETS, Autoencoder, count_parameters, load_autoencoder


def synthetic(samples: int, seed: int = 0) -> np.ndarray:
    """(2, samples): drifting partials, panned differently, with noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SAMPLE_RATE
    out = np.zeros((2, samples))
    for f in rng.uniform(55, 4000, 10):
        pan = rng.uniform(0.2, 0.8)
        part = 0.03 * np.sin(2 * np.pi * f * t * (1 + 0.001 * np.sin(0.3 * t)))
        out += np.stack([pan * part, (1 - pan) * part])
    bursts = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(samples) * 0.05
    return (out + bursts).astype(np.float32)


def long_audio(path: str | None, samples: int) -> np.ndarray:
    """The file looped to ``samples`` (or synthetic audio)."""
    if path is None:
        return synthetic(samples)
    audio = load_audio(path)
    reps = -(-samples // audio.shape[1])
    return np.tile(audio, (1, reps))[:, :samples]


def seam_ratio(ref: np.ndarray, est: np.ndarray, chunk: int, halo: int = 1024) -> float:
    err = ((ref - est) ** 2).sum(0)
    pos = np.arange(err.shape[0]) % chunk
    near = (pos < halo) | (pos >= chunk - halo)
    inner = slice(chunk, err.shape[0] - chunk)
    return float(err[inner][near[inner]].mean() / max(err[inner][~near[inner]].mean(), 1e-30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="autoencoder.pt or a run's last.pt")
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--audio", help="audio file (looped to the length); default synthetic")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=2, choices=(1, 2))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        model = load_autoencoder(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = Autoencoder(PRESETS[args.preset]).eval()
    samples = int(args.minutes * 60 * SAMPLE_RATE) + 777
    audio = long_audio(args.audio, samples)
    x = torch.from_numpy(audio)[None]
    seconds = samples / SAMPLE_RATE
    t0 = time.perf_counter()
    z = model.encode(x)
    t1 = time.perf_counter()
    y = model.decode(z, length=samples, steps=args.steps)[0].numpy()
    t2 = time.perf_counter()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"model: {'checkpoint ' + args.checkpoint if args.checkpoint else args.preset + ' (random init)'}, "
          f"{count_parameters(model) / 1e6:.2f}M parameters, {args.threads} thread(s)")
    print(f"audio: {seconds:.1f} s ({samples} samples, stereo 48 kHz)")
    print(f"latents: {tuple(z.shape[1:])} ({z.shape[-1] / seconds:.2f} frames/s), "
          f"std {float(z.std()):.3f}, |z| max {float(z.abs().max()):.3f}")
    print(f"decoded length == input length: {y.shape[-1] == samples} ({y.shape[-1]})")
    print(f"encode: {t1 - t0:.1f} s ({seconds / (t1 - t0):.1f}x real time)")
    print(f"decode ({args.steps} step(s)): {t2 - t1:.1f} s ({seconds / (t2 - t1):.1f}x real time)")
    print(f"peak memory: {peak_gb:.2f} GB")
    print(f"seam ratio (error near chunk borders / elsewhere): "
          f"{seam_ratio(audio, y, model.cfg.chunk_samples):.3f}")


if __name__ == "__main__":
    main()
