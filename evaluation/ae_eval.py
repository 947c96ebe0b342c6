"""Reconstruction quality of the autoencoder on held-out songs, beside two references.

Metrics (``ref``, ``est``: float arrays ``(2, N)`` at 48 kHz; lower is better unless noted):

- ``mrstft``: multi-resolution STFT distance, the mean over Hann windows of 512, 1024 and
  2048 samples (hop 1/4) of spectral convergence ``||S - S'||_F / ||S||_F`` plus the mean
  absolute difference of natural-log magnitudes (floor 1e-5). 0 for identical signals.
- ``si_sdr`` (dB, higher is better): scale-invariant SDR per channel after removing the
  mean, averaged over channels, capped at 100 dB (identical or scaled copies).
- ``log_mel_l1``: mean absolute difference of log10 mel energies (128 mels, Hann 2048,
  hop 512, floor 1e-5).
- stereo image, input vs output: inter-channel correlation ``ICC = <L, R> / (|L| |R|)``
  and side/mid energy ratio ``10 log10(E[S^2] / E[M^2])`` with ``M = (L+R)/2``,
  ``S = (L-R)/2``, clipped to [-60, 60] dB; reported as absolute differences.

References measured the same way on the same clips: a 48 -> 24 -> 48 kHz round trip with
libsoxr (VHQ), which removes everything above 12 kHz, and Griffin-Lim phase recovery
(fast GLA, momentum 0.99) from the magnitudes of the autoencoder's own STFT (Hann 2048,
hop 512). :func:`evaluate_autoencoder` writes ``metrics.csv`` (per clip and system),
``summary.csv``, ``summary.md`` and ``spectrograms.png``, plus WAVs of a few examples.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from tqdm.auto import tqdm

from sideman.data.audio import SAMPLE_RATE, load_audio
from sideman.data.layouts import read_multitrack
from sideman.data.multitrack import BLOCK, Song
from sideman.models.autoencoder import Autoencoder, load_autoencoder
from sideman.numerics.spectral import mel_filterbank
from sideman.training.ae_training import split_songs

__all__ = ["si_sdr", "multires_stft_distance", "log_mel_l1", "mel_filterbank", "stereo_image",
           "reconstruction_metrics", "resample_roundtrip", "griffin_lim", "eval_clips",
           "evaluate_autoencoder", "METRICS"]

METRICS = ("mrstft", "si_sdr", "log_mel_l1", "icc_err", "side_mid_err_db")
RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def _magnitudes(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``(C, N)`` -> ``(C, n_fft/2+1, frames)`` STFT magnitudes (Hann, centred)."""
    return torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs()


def si_sdr(ref, est, cap_db: float = 100.0) -> float:
    """Scale-invariant SDR in dB, mean over channels of ``(C, N)`` arrays (NaN if the
    reference is silent)."""
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    ref = ref - ref.mean(-1, keepdims=True)
    est = est - est.mean(-1, keepdims=True)
    values = []
    for r, e in zip(np.atleast_2d(ref), np.atleast_2d(est)):
        energy = np.dot(r, r)
        if energy <= 0:
            values.append(np.nan)
            continue
        target = (np.dot(e, r) / energy) * r
        noise = np.dot(e - target, e - target)
        ratio = np.dot(target, target) / noise if noise > 0 else np.inf
        values.append(min(cap_db, 10 * np.log10(ratio)) if ratio > 0 else -cap_db)
    return float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")


def multires_stft_distance(ref, est, resolutions=RESOLUTIONS, floor: float = 1e-5) -> float:
    """Mean over resolutions of spectral convergence + mean |log S - log S'|."""
    r, e = _as_tensor(ref), _as_tensor(est)
    total = 0.0
    for n_fft, hop in resolutions:
        sr, se = _magnitudes(r, n_fft, hop), _magnitudes(e, n_fft, hop)
        sc = torch.linalg.vector_norm(sr - se) / torch.linalg.vector_norm(sr).clamp_min(1e-12)
        lm = (sr.clamp_min(floor).log() - se.clamp_min(floor).log()).abs().mean()
        total += float(sc + lm)
    return total / len(resolutions)


_MEL_CACHE: dict[tuple, torch.Tensor] = {}


def log_mel_l1(ref, est, n_fft: int = 2048, hop: int = 512, n_mels: int = 128,
               floor: float = 1e-5) -> float:
    """Mean absolute difference of log10 mel power spectrograms."""
    key = (n_fft, n_mels)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = torch.from_numpy(mel_filterbank(SAMPLE_RATE, n_fft, n_mels))
    bank = _MEL_CACHE[key]
    mels = [torch.log10((bank @ _magnitudes(_as_tensor(x), n_fft, hop) ** 2).clamp_min(floor))
            for x in (ref, est)]
    return float((mels[0] - mels[1]).abs().mean())


def stereo_image(audio, limit_db: float = 60.0) -> tuple[float, float]:
    """``(ICC, side/mid dB)`` of a ``(2, N)`` signal (ICC 1 for dual mono; 0 if silent)."""
    a = np.asarray(audio, dtype=np.float64)
    left, right = a[0], a[1]
    norm = math.sqrt(np.dot(left, left) * np.dot(right, right))
    icc = float(np.dot(left, right) / norm) if norm > 0 else 0.0
    mid, side = (left + right) / 2, (left - right) / 2
    ms, ss = np.dot(mid, mid), np.dot(side, side)
    if ms <= 0 and ss <= 0:
        return icc, 0.0
    ratio = 10 * np.log10(max(ss, 1e-30) / max(ms, 1e-30))
    return icc, float(np.clip(ratio, -limit_db, limit_db))


def reconstruction_metrics(ref, est) -> dict[str, float]:
    """All metrics of one clip (see the module docstring)."""
    icc_r, sm_r = stereo_image(ref)
    icc_e, sm_e = stereo_image(est)
    return {"mrstft": multires_stft_distance(ref, est), "si_sdr": si_sdr(ref, est),
            "log_mel_l1": log_mel_l1(ref, est), "icc_ref": icc_r, "icc_est": icc_e,
            "icc_err": abs(icc_r - icc_e), "side_mid_ref_db": sm_r, "side_mid_est_db": sm_e,
            "side_mid_err_db": abs(sm_r - sm_e)}


def resample_roundtrip(audio: np.ndarray, low_rate: int = 24000) -> np.ndarray:
    """``(C, N)`` at 48 kHz -> ``low_rate`` -> 48 kHz with libsoxr VHQ, same length."""
    down = soxr.resample(np.ascontiguousarray(audio.T), SAMPLE_RATE, low_rate, quality="VHQ")
    up = soxr.resample(down, low_rate, SAMPLE_RATE, quality="VHQ").T
    out = np.zeros_like(audio)
    n = min(audio.shape[1], up.shape[1])
    out[:, :n] = up[:, :n]
    return out


def griffin_lim(audio: np.ndarray, n_iter: int = 32, n_fft: int = 2048, hop: int = 512,
                momentum: float = 0.99, seed: int = 0) -> np.ndarray:
    """Phase recovery from the STFT magnitudes of ``audio (C, N)``: fast Griffin-Lim
    (Perraudin et al. 2013) from random phases, ``n_iter`` iterations; returns ``(C, N)``."""
    x = _as_tensor(audio)
    n = x.shape[-1]
    window = torch.hann_window(n_fft)
    stft = lambda s: torch.stft(s, n_fft, hop, window=window, center=True,          # noqa: E731
                                return_complex=True)
    istft = lambda spec: torch.istft(spec, n_fft, hop, window=window, center=True,  # noqa: E731
                                     length=n)
    mag = stft(x).abs()
    g = torch.Generator().manual_seed(seed)
    phase = torch.polar(torch.ones_like(mag), 2 * math.pi * torch.rand(mag.shape, generator=g))
    t = c_prev = mag * phase
    for _ in range(n_iter):
        c = stft(istft(mag * torch.sgn(t)))
        t = c + momentum * (c - c_prev)
        c_prev = c
    return istft(mag * torch.sgn(c_prev)).numpy()


def eval_clips(songs: list[Song], count: int, samples: int, seed: int = 0,
               silence_db: float = -45.0) -> list[dict]:
    """``count`` clips of ``samples`` from ``songs``: even clips are full mixes (sum of all
    stems), odd clips single stems; a pure function of ``seed``. Each clip is a dict with
    ``audio (2, samples)`` float32, ``song``, ``kind`` and ``start``."""
    clips = []
    for i in range(count):
        rng = np.random.default_rng((seed, i))
        song = songs[(i // 2) % len(songs)]
        stems = song.stems if i % 2 == 0 else [song.stems[int(rng.integers(len(song.stems)))]]
        last = max(0, (song.frames - samples) // BLOCK)
        level = sum(s.activity[:song.frames // BLOCK] for s in stems)
        blocks = max(1, samples // BLOCK)
        starts = [b for b in range(last + 1)
                  if 10 * np.log10(max(float(level[b:b + blocks].mean()), 1e-20)) > silence_db]
        start = int(rng.choice(starts)) * BLOCK if starts else 0
        audio = sum(load_audio(s.path, start, samples) for s in stems)
        clips.append({"audio": audio.astype(np.float32), "song": song.song_id,
                      "kind": "mix" if i % 2 == 0 else stems[0].name, "start": start})
    return clips


def _plot_spectrograms(pairs: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    """One row per clip: input and reconstruction, mid-channel log magnitude (dB)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 2, figsize=(12, 3 * len(pairs)), squeeze=False)
    for row, (title, ref, est) in zip(axes, pairs):
        for ax, audio, name in ((row[0], ref, "input"), (row[1], est, "reconstruction")):
            mid = _as_tensor(audio).mean(0, keepdim=True)
            db = 20 * torch.log10(_magnitudes(mid, 2048, 512)[0].clamp_min(1e-5))
            ax.imshow(db.numpy(), origin="lower", aspect="auto", vmin=-80, vmax=float(db.max()),
                      extent=(0, audio.shape[-1] / SAMPLE_RATE, 0, SAMPLE_RATE / 2000), cmap="magma")
            ax.set_title(f"{title}: {name}", fontsize=9)
            ax.set_xlabel("s")
            ax.set_ylabel("kHz")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _markdown(summary: list[dict], notes: list[str]) -> str:
    head = ("| system | MR-STFT dist. (lower better) | SI-SDR dB (higher better) | "
            "log-mel L1 (lower better) | abs. ICC error | abs. side/mid error dB |")
    lines = [head, "|---|---|---|---|---|---|"]
    for row in summary:
        cells = [f"{row[m]:.3f} ± {row[m + '_std']:.3f}" for m in METRICS]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def evaluate_autoencoder(checkpoint: str | os.PathLike, data_dir: str | os.PathLike,
                         out_dir: str | os.PathLike, clips: int = 8, seconds: float = 10.0,
                         steps: int = 2, gl_iters: int = 32, seed: int = 0, examples: int = 3,
                         split: str = "validation", layout: str = "auto",
                         refine_sigma: float | None = None, device: str = "cpu",
                         mode: str = "sequential",
                         progress: bool = True) -> list[dict]:
    """Evaluate a checkpoint (exported ``autoencoder.pt`` or a run's ``last.pt``) on
    ``clips`` clips of ``seconds`` from the ``split`` songs, decoding with ``steps`` steps
    (and ``refine_sigma``, default the model's) in ``mode`` ("parallel" or "sequential");
    returns the summary rows (mean and std per system) and writes the files listed in the
    module docstring."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model: Autoencoder = load_autoencoder(checkpoint, device)
    songs = split_songs(read_multitrack(data_dir, layout, progress=progress), split)
    if not songs:
        raise ValueError(f"{data_dir}: no songs in split '{split}'")
    samples = int(round(seconds * SAMPLE_RATE))
    rows, pictures, latents = [], [], []
    for i, clip in enumerate(tqdm(eval_clips(songs, clips, samples, seed), desc="evaluating",
                                  disable=not progress)):
        ref = clip["audio"]
        x = torch.from_numpy(ref)[None].to(device)
        z = model.encode(x)
        gen = np.random.default_rng(seed + i)
        recon = model.decode(z, length=samples, steps=steps, rng=gen, mode=mode,
                             refine_sigma=refine_sigma)[0].cpu().numpy()
        latents.append(z.cpu())
        systems = {"autoencoder": recon, "soxr 48k>24k>48k": resample_roundtrip(ref),
                   f"Griffin-Lim ({gl_iters} it.)": griffin_lim(ref, gl_iters, seed=seed + i)}
        for name, est in systems.items():
            rows.append({"clip": i, "song": clip["song"], "kind": clip["kind"],
                         "start": clip["start"], "system": name, **reconstruction_metrics(ref, est)})
        if i < examples:
            title = f"clip {i} ({clip['song']}, {clip['kind']})"
            pictures.append((title, ref, recon))
            sf.write(out / f"clip{i}_input.wav", ref.T, SAMPLE_RATE, subtype="FLOAT")
            sf.write(out / f"clip{i}_autoencoder.wav", recon.T, SAMPLE_RATE, subtype="FLOAT")
    _write_csv(rows, out / "metrics.csv")
    summary = []
    for name in dict.fromkeys(r["system"] for r in rows):
        picked = [r for r in rows if r["system"] == name]
        row = {"system": name}
        for m in METRICS:
            values = np.array([r[m] for r in picked], dtype=np.float64)
            row[m], row[m + "_std"] = float(np.nanmean(values)), float(np.nanstd(values))
        summary.append(row)
    _write_csv(summary, out / "summary.csv")
    z = torch.cat(latents, dim=-1)
    health = {"latent_std": float(z.std()), "latent_abs_max": float(z.abs().max()),
              "latent_saturated": float((z.abs() > 0.9 * model.cfg.latent_bound).float().mean()),
              "channel_std_min": float(z.std(dim=(0, 2)).min()),
              "channel_std_max": float(z.std(dim=(0, 2)).max())}
    notes = [f"checkpoint: {checkpoint}", f"{clips} clips of {seconds:g} s from {len(songs)} "
             f"'{split}' songs of {data_dir} (even clips: full mix, odd: one stem)",
             f"autoencoder decoding: {mode}, {steps} step(s)"
             + (f", refine sigma {refine_sigma or model.cfg.refine_sigma:g}" if steps == 2 else "")
             + "; mean ± std over clips",
             "latents: " + ", ".join(f"{k} {v:.3g}" for k, v in health.items())]
    (out / "summary.md").write_text(_markdown(summary, notes))
    (out / "latent_health.json").write_text(json.dumps(health, indent=2))
    _plot_spectrograms(pictures, out / "spectrograms.png")
    return summary
