"""Spectral transforms in numpy, matching the torch modules the models train with.

The onnxruntime engine runs without torch, and ONNX's exporter cannot trace complex STFTs,
so the bundle holds only the networks and the engine does this signal processing here.
Tests check each function against its torch counterpart (models.stft, models.clap_house).

Conventions (as torch.stft/istft with center=True, zero padding, periodic Hann window):
audio is float (C, N); spectra are complex (C, n_fft // 2 + 1, 1 + N // hop).
"""
from __future__ import annotations

import numpy as np


def hann(n: int) -> np.ndarray:
    """Periodic Hann window (torch.hann_window's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


class _ScipyFFT:
    """scipy.fft on every core: in float32 it runs about 4x numpy's single-threaded FFT."""

    @staticmethod
    def rfft(x, axis=-1):
        import scipy.fft
        return scipy.fft.rfft(x, axis=axis, workers=-1)

    @staticmethod
    def irfft(x, n=None, axis=-1):
        import scipy.fft
        return scipy.fft.irfft(x, n=n, axis=axis, workers=-1)


def _fft(dtype):
    """The FFT for `dtype`: float64 keeps numpy's (what the autoencoder's and the models'
    recorded outputs were computed with), float32 runs scipy.fft threaded."""
    return _ScipyFFT if dtype == np.float32 else np.fft


def stft(audio: np.ndarray, n_fft: int, hop: int, window: np.ndarray | None = None,
         dtype: type = np.float64) -> np.ndarray:
    """Complex STFT (C, n_fft//2+1, 1 + N//hop) of (C, N) audio, frames centred on hop * j,
    computed in `dtype` (float32: complex64, about twice as fast)."""
    window = (hann(n_fft) if window is None else window).astype(dtype)
    padded = np.pad(np.asarray(audio, dtype), ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    return _fft(dtype).rfft(frames * window, axis=-1).transpose(0, 2, 1)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int, dtype: type = np.float64) -> np.ndarray:
    """Inverse of `stft` by weighted overlap-add; (C, n_fft//2+1, T) -> (C, length) in `dtype`.

    Frames j and j + n_fft/hop do not overlap, so the overlap-add is n_fft/hop strided sums
    (n_fft a multiple of hop) rather than one addition per frame."""
    window = hann(n_fft).astype(dtype)
    complex_type = np.complex64 if dtype == np.float32 else np.complex128
    frames = _fft(dtype).irfft(spec.transpose(0, 2, 1).astype(complex_type, copy=False), n=n_fft, axis=-1) * window
    channels, count = frames.shape[:2]
    total = n_fft + hop * (count - 1)
    out = np.zeros((channels, total), dtype)
    norm = np.zeros(total)
    if n_fft % hop == 0:
        ratio = n_fft // hop
        for r in range(min(ratio, count)):
            group = frames[:, r::ratio]                       # (C, m, n_fft), back to back
            start, span = r * hop, group.shape[1] * n_fft
            out[:, start:start + span] += group.reshape(channels, span)
            norm[start:start + span] += np.tile(window ** 2, group.shape[1])
    else:
        for j in range(count):
            out[:, j * hop:j * hop + n_fft] += frames[:, j]
            norm[j * hop:j * hop + n_fft] += window ** 2
    start = n_fft // 2
    out = out[:, start:start + length]
    norm = norm[start:start + length]
    result = np.zeros((channels, length), dtype)
    result[:, :out.shape[1]] = out / np.where(norm > 1e-11, norm, 1.0)
    return result


def compress(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Complex amplitude compression beta |x|^alpha e^{i angle x}."""
    return x * (beta * np.maximum(np.abs(x), 1e-12) ** (alpha - 1.0))


def decompress(y: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Inverse of `compress`."""
    return y * (beta ** (-1.0 / alpha) * np.abs(y) ** (1.0 / alpha - 1.0))


def ae_spectrogram(audio: np.ndarray, n_fft: int, hop: int, alpha: float, beta: float) -> np.ndarray:
    """Autoencoder input (models.stft.SpectralTransform): (B, 2, N) -> (B, 4, n_fft/2, N/hop)
    float32, channels (left.re, left.im, right.re, right.im), Nyquist bin dropped."""
    b, c, n = audio.shape
    if n % hop:
        raise ValueError(f"length {n} is not a multiple of the hop {hop}")
    x = compress(stft(audio.reshape(b * c, n), n_fft, hop)[:, :n_fft // 2, :n // hop], alpha, beta)
    parts = np.stack([x.real, x.imag], axis=1)  # (B*2, 2, bins, frames)
    return parts.reshape(b, 2 * c, n_fft // 2, n // hop).astype(np.float32)


def ae_audio(spec: np.ndarray, n_fft: int, hop: int, alpha: float, beta: float,
             length: int) -> np.ndarray:
    """Inverse of `ae_spectrogram`: (B, 4, bins, T) -> (B, 2, length) float32."""
    b, _, bins, frames = spec.shape
    x = spec.astype(np.float64).reshape(b * 2, 2, bins, frames)
    x = decompress(x[:, 0] + 1j * x[:, 1], alpha, beta)
    x = np.concatenate([x, np.zeros((b * 2, 1, frames))], axis=1)
    audio = istft(x, n_fft, hop, frames * hop)[:, :length]
    return audio.reshape(b, 2, -1).astype(np.float32)


def log_mel(wave: np.ndarray, sample_rate: int, n_fft: int, hop: int, n_mels: int,
            f_min: float, f_max: float) -> np.ndarray:
    """House-CLAP features (models.clap_house.LogMel): (B, S) -> (B, 1 + S // hop, n_mels),
    window normalised by its sum, (log10(mel power + 1e-6) + 3) / 3."""
    window = hann(n_fft)
    spec = stft(wave, n_fft, hop, window / window.sum())
    power = spec.real ** 2 + spec.imag ** 2
    bank = np.ascontiguousarray(mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, unit_area=False).T)
    mel = power.transpose(0, 2, 1) @ bank
    return ((np.log10(mel + 1e-6) + 3.0) / 3.0).astype(np.float32)


def mel_filterbank(sample_rate: int = 48_000, n_fft: int = 2048, n_mels: int = 128,
                   f_min: float = 0.0, f_max: float | None = None, unit_area: bool = True) -> np.ndarray:
    """(n_mels, n_fft/2+1) triangular filters equally spaced on the HTK mel scale, float32:
    each normalised to unit area (Slaney-style, the log-mel metric and the codec loss) or,
    with unit_area False, to peak 1 (the house CLAP's features)."""
    f_max = f_max or sample_rate / 2
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)     # noqa: E731
    hz = lambda m: 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)      # noqa: E731
    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower = (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None])
    bank = np.maximum(0.0, np.minimum(lower, upper))
    if unit_area:
        bank = bank * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return bank.astype(np.float32)


def log_frequency_filterbank(sample_rate: int = 48_000, n_fft: int = 2048, f_min: float = 32.7,
                             f_max: float = 4186.0, bands_per_octave: int = 24) -> np.ndarray:
    """(bands, n_fft/2+1) triangular filters at equal steps of log frequency (24 per octave:
    quarter tones; 32.7-4186 Hz: MIDI 24-108, where the notes are), each summing to 1. A
    band narrower than the bin spacing interpolates linearly between the two nearest bins,
    so every band reads the spectrum at its own centre frequency."""
    bands = int(round(bands_per_octave * np.log2(f_max / f_min))) + 1
    centres = f_min * 2.0 ** (np.arange(bands) / bands_per_octave)
    bin_hz = sample_rate / n_fft
    half_width = np.maximum(centres * (2 ** (1 / bands_per_octave) - 1), bin_hz)
    freqs = np.arange(n_fft // 2 + 1) * bin_hz
    bank = np.maximum(0.0, 1.0 - np.abs(freqs[None] - centres[:, None]) / half_width[:, None])
    return (bank / bank.sum(1, keepdims=True)).astype(np.float32)
