"""The autoencoder's output equaliser: one gain per frequency bin that gives decoded audio
the long-term spectrum of its input, measured on training windows.

A consistency decoder trained briefly regresses towards the conditional mean wherever the
latents do not pin down the phase, so its output is too quiet, and unevenly so across
frequency (the demo codec: 8-10 dB low in the bass, up to 20 dB around 1.5 kHz). The
equaliser undoes that average loss:

    eq_db[f] = 10 log10( P_in[f] / P_out[f] )

with P the power |X|^2 of the codec's own STFT (Hann 2048, hop 512, Nyquist bin dropped),
summed over every frame and both channels of ``windows`` training-split target stems (what
the decoder turns out in generation), each averaged over a band of ``smooth_octaves``
around the bin (1/3 octave: the gain follows the spectral balance, not the partials of the
training songs); 0 dB where the input has no energy (more than ``floor_db`` below its loudest bin);
then clamped to [-max_cut_db, +max_boost_db]. It is measured with the equaliser off
(decoding as the bundle does: its steps and mode) and stored in the model's ``eq_db``
buffer, which ``Autoencoder.decode`` and the engine's codec apply.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from sideman.numerics.spectral import stft

__all__ = ["EqSettings", "EqMeasurement", "long_term_power", "octave_smooth", "equaliser_db", "measure_decoder_eq",
           "calibrate_autoencoder", "plot_decoder_eq"]


@dataclass(frozen=True)
class EqSettings:
    """How the equaliser is measured and bounded (dB on linear amplitude)."""

    windows: int = 64
    seconds: float = 10.0
    smooth_octaves: float = 1 / 3
    max_boost_db: float = 24.0
    max_cut_db: float = 12.0
    floor_db: float = -100.0


@dataclass(frozen=True)
class EqMeasurement:
    """Long-term power per bin (bins,) of the inputs and of their decodings (equaliser
    off), and the equaliser (bins,) in dB derived from them."""

    power_in: np.ndarray
    power_out: np.ndarray
    eq_db: np.ndarray
    sample_rate: int
    n_fft: int


def long_term_power(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Sum over frames and channels of |X|^2 of (C, N) audio: (n_fft // 2,) float64."""
    spec = stft(np.asarray(audio, np.float64).reshape(-1, np.shape(audio)[-1]), n_fft, hop)
    return (np.abs(spec[:, :n_fft // 2]) ** 2).sum(axis=(0, 2))


def octave_smooth(power: np.ndarray, octaves: float) -> np.ndarray:
    """Mean of `power` (bins,) over bins k / 2^(octaves/2) .. k * 2^(octaves/2) around each
    bin k (at least the bin itself); `octaves` 0 leaves it as it is."""
    power = np.asarray(power, np.float64)
    if octaves <= 0:
        return power
    k, half = np.arange(len(power)), 2.0 ** (octaves / 2)
    lo = np.minimum(np.floor(k / half).astype(int), k)
    hi = np.minimum(np.maximum(np.ceil(k * half).astype(int), k) + 1, len(power))
    csum = np.concatenate([[0.0], np.cumsum(power)])
    return (csum[hi] - csum[lo]) / (hi - lo)


def equaliser_db(power_in: np.ndarray, power_out: np.ndarray, settings: EqSettings = EqSettings()) -> np.ndarray:
    """The gains (bins,) float32 in dB that map `power_out` onto `power_in` (see module)."""
    p_in, p_out = octave_smooth(power_in, settings.smooth_octaves), octave_smooth(power_out, settings.smooth_octaves)
    if p_in.shape != p_out.shape:
        raise ValueError(f"power spectra differ in shape: {p_in.shape} vs {p_out.shape}")
    if p_in.max() <= 0:
        raise ValueError("the inputs are silent: nothing to measure the equaliser on")
    tiny = np.finfo(np.float64).tiny
    gain = 10 * np.log10(np.maximum(p_in, tiny) / np.maximum(p_out, tiny))
    gain[p_in < p_in.max() * 10 ** (settings.floor_db / 10)] = 0.0
    return np.clip(gain, -settings.max_cut_db, settings.max_boost_db).astype(np.float32)


def measure_decoder_eq(ae, clips: Iterable[np.ndarray], settings: EqSettings = EqSettings(),
                       decode_steps: int = 1, decode_mode: str = "parallel", seed: int = 0,
                       progress: bool = True, total: int | None = None) -> EqMeasurement:
    """Encode and decode each (2, N) clip with `ae` (a models.autoencoder.Autoencoder), its
    equaliser off; the measurement."""
    import torch
    from tqdm import tqdm

    cfg = ae.cfg
    bins = cfg.n_fft // 2
    p_in, p_out = np.zeros(bins), np.zeros(bins)
    saved = ae.eq_db.clone()
    rng = np.random.default_rng(seed)
    try:
        ae.eq_db.zero_()
        for clip in tqdm(clips, total=total, desc="decoder equaliser", unit="clip", disable=not progress):
            with torch.no_grad():
                audio = torch.from_numpy(np.asarray(clip, np.float32))[None]
                decoded = ae.decode(ae.encode(audio), length=audio.shape[-1], steps=decode_steps,
                                    rng=rng, mode=decode_mode)[0].numpy()
            p_in += long_term_power(clip, cfg.n_fft, cfg.hop)
            p_out += long_term_power(decoded, cfg.n_fft, cfg.hop)
    finally:
        ae.eq_db.copy_(saved)
    return EqMeasurement(p_in, p_out, equaliser_db(p_in, p_out, settings), cfg.sample_rate, cfg.n_fft)


def training_stems(data_dir: str | Path, settings: EqSettings, seed: int = 0):
    """The first `settings.windows` target stems (2, N) of the training-split pairs."""
    from sideman.data.layouts import read_multitrack
    from sideman.data.pairs import PairConfig, PairSampler

    sampler = PairSampler(read_multitrack(data_dir, progress=False),
                          PairConfig(seconds=settings.seconds, clap_seconds=settings.seconds, seed=seed), "train")
    return (sampler.sample(i, 0).target for i in range(settings.windows))


def calibrate_autoencoder(checkpoint: str | Path, data_dir: str | Path, out: str | Path,
                          settings: EqSettings = EqSettings(), decode_steps: int = 1,
                          decode_mode: str = "parallel", seed: int = 0, progress: bool = True) -> dict:
    """Measure the equaliser of the autoencoder `checkpoint` on `data_dir`'s training split
    and write the equalised model to `out` (a standalone autoencoder file), the measurement
    beside it (`<out stem>.npz`) and its plot (`<out stem>.png`). Returns a summary."""
    import torch
    from sideman.models.autoencoder import load_autoencoder, save_autoencoder

    if settings.windows < 1:
        raise ValueError(f"need at least one window, got {settings.windows}")
    ae = load_autoencoder(checkpoint)
    m = measure_decoder_eq(ae, training_stems(data_dir, settings, seed), settings, decode_steps, decode_mode,
                           seed, progress, total=settings.windows)
    ae.eq_db.copy_(torch.from_numpy(m.eq_db))
    out = Path(out)
    save_autoencoder(ae, out, decoder_eq={"settings": settings.__dict__, "source": str(checkpoint)})
    np.savez(out.with_suffix(".npz"), eq_db=m.eq_db, power_in=m.power_in, power_out=m.power_out)
    plot_decoder_eq(m, out.with_suffix(".png"))
    loss = 10 * np.log10(m.power_in.sum() / max(m.power_out.sum(), np.finfo(float).tiny))
    return {"windows": settings.windows, "smooth_octaves": settings.smooth_octaves, "level_loss_db": round(float(loss), 2),
            "eq_min_db": round(float(m.eq_db.min()), 2), "eq_max_db": round(float(m.eq_db.max()), 2),
            "eq_mean_db": round(float(m.eq_db.mean()), 2)}


def plot_decoder_eq(m: EqMeasurement, path: str | Path) -> Path:
    """Long-term spectra of inputs, decodings and equalised decodings (dB per bin, same
    scale), and the equaliser curve, against frequency on a log axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs = np.arange(1, len(m.eq_db)) * m.sample_rate / m.n_fft  # bin 0 (DC) left out of a log axis
    db = lambda p: 10 * np.log10(np.maximum(p[1:], np.finfo(float).tiny))  # noqa: E731
    ref = db(m.power_in).max()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=(2, 1))
    top.semilogx(freqs, db(m.power_in) - ref, label="input", lw=1.2)
    top.semilogx(freqs, db(m.power_out) - ref, label="decoded", lw=1.0)
    top.semilogx(freqs, db(m.power_out) + m.eq_db[1:] - ref, label="decoded, equalised", lw=1.0, ls="--")
    top.set_ylabel("long-term power (dB)")
    top.set_ylim(-120, 5)
    top.legend()
    top.grid(alpha=0.3)
    bottom.semilogx(freqs, m.eq_db[1:], color="k", lw=1.2)
    bottom.set_ylabel("equaliser (dB)")
    bottom.set_xlabel("frequency (Hz)")
    bottom.grid(alpha=0.3)
    fig.suptitle("Autoencoder output equaliser")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
