"""Phase for STFT magnitudes, without iterations: the spectral codec's decoder predicts
magnitudes only, and this module turns them into audio (numpy, torch-free: the engine and
the torch model both call it).

Each bin turns at an instantaneous frequency, its centre plus a deviation of at most one
bin, and its phase is the running sum of that frequency (a phase vocoder's synthesis,
`integrate_phase`). The deviation comes from the magnitudes themselves (`peak_deviation`):
every bin turns at the frequency of its nearest spectral peak, located between bins by a
parabola through the peak's log magnitude and its neighbours' (the peak-picking of
sinusoidal modelling, with the identity phase locking of Laroche and Dolson: all the bins
of one partial turn together). With the input's own magnitudes this kept note-F1 0.92 /
0.74 / 0.53 / 0.85 on bass / guitar / pads / lead clips, against 0.97 / 0.79 / 0.53 / 0.81
with the true instantaneous frequencies (`instantaneous_deviation`, an oracle) and 0.42 /
0.42 / 0.45 / 0.88 with every bin at its centre (docs/codec.md).

Shapes: spectra and magnitudes are (..., bins, frames) with bins = n_fft // 2 + 1, frames
at `hop` as in numerics.spectral.stft; n_fft must be a multiple of hop.
"""
from __future__ import annotations

import numpy as np

from sideman.numerics.spectral import istft

MAX_DEVIATION = 0.999  # bins; a partial further away belongs to the next bin


def integrate_phase(deviation: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Phase (..., bins, T) of bins turning at their centre frequency plus `deviation` bins:

        phase[k, t] = pi k + 2 pi (hop / n_fft) sum_{s <= t} (k + deviation[k, s])

    (pi k: a partial's phase at the centre of a Hann-windowed frame alternates in sign from
    bin to bin, so every bin of one partial adds up in phase). The centre part is computed
    with integers modulo 2 pi, exact for any length."""
    if n_fft % hop:
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop})")
    bins, frames = deviation.shape[-2:]
    ratio = n_fft // hop
    k = np.arange(bins)[:, None]
    t = np.arange(1, frames + 1)[None]
    centre = (k * t) % ratio * (2 * np.pi / ratio) + np.pi * (k % 2)
    return centre + (2 * np.pi / ratio) * np.cumsum(deviation, axis=-1)


def instantaneous_deviation(spec: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The deviation (bins, clamped to +-MAX_DEVIATION) of each bin's phase advance from its
    centre frequency: complex (..., bins, T) -> (..., bins, T), the first frame 0. What
    `integrate_phase` sums; the oracle that `peak_deviation` estimates from magnitudes."""
    k = np.arange(spec.shape[-2])[:, None]
    angle = np.angle(spec)
    advance = angle[..., 1:] - angle[..., :-1] - 2 * np.pi * hop / n_fft * k
    advance = np.remainder(advance + np.pi, 2 * np.pi) - np.pi
    deviation = advance / (2 * np.pi * hop / n_fft)
    first = np.zeros(deviation.shape[:-1] + (1,))
    return np.clip(np.concatenate([first, deviation], -1), -MAX_DEVIATION, MAX_DEVIATION)


def peak_deviation(magnitude: np.ndarray, floor_db: float = -70.0) -> np.ndarray:
    """Magnitudes (..., bins, T) -> the deviation of each bin's nearest spectral peak from
    the bin's centre (bins, clamped to +-MAX_DEVIATION), per frame.

    A peak is a bin louder than its lower neighbour, at least as loud as its upper one and
    within floor_db of the frame's loudest bin; its frequency is the vertex of the parabola
    through the three log magnitudes. A bin takes its nearer peak (the lower one on a tie);
    frames without a peak keep every bin at its centre (deviation 0)."""
    log_mag = np.log(np.maximum(np.moveaxis(magnitude, -2, -1), 1e-12))  # (..., T, bins)
    bins = log_mag.shape[-1]
    below = np.concatenate([log_mag[..., :1], log_mag[..., :-1]], -1)
    above = np.concatenate([log_mag[..., 1:], log_mag[..., -1:]], -1)
    floor = log_mag.max(-1, keepdims=True) + floor_db / 20 * np.log(10)
    peak = (log_mag > below) & (log_mag >= above) & (log_mag > floor)
    curvature = below - 2 * log_mag + above
    offset = np.divide(0.5 * (below - above), curvature, out=np.zeros_like(curvature),
                       where=np.abs(curvature) > 1e-9)
    offset = np.clip(offset, -0.5, 0.5)
    k = np.broadcast_to(np.arange(bins), log_mag.shape)
    none = 4 * bins  # "no peak on this side": farther than any real peak
    lower = np.maximum.accumulate(np.where(peak, k, -none), axis=-1)
    upper = np.flip(np.minimum.accumulate(np.flip(np.where(peak, k, none), -1), axis=-1), -1)
    nearest = np.where(k - lower <= upper - k, lower, upper)
    found = (nearest >= 0) & (nearest < bins)
    index = np.clip(nearest, 0, bins - 1)
    frequency = index + np.take_along_axis(offset, index, -1)
    deviation = np.where(found, frequency - k, 0.0)
    return np.moveaxis(np.clip(deviation, -MAX_DEVIATION, MAX_DEVIATION), -1, -2)


def audio_from_magnitude(magnitude: np.ndarray, n_fft: int, hop: int, length: int,
                         dtype: type = np.float64) -> np.ndarray:
    """Magnitudes (C, bins, T) -> audio (C, length) in `dtype`: `peak_deviation` phase,
    inverse STFT (computed in dtype; the phase's running sum always in float64)."""
    phase = integrate_phase(peak_deviation(magnitude.astype(dtype, copy=False)), n_fft, hop)
    spec = magnitude * (np.cos(phase).astype(dtype) + 1j * np.sin(phase).astype(dtype))
    return istft(spec, n_fft, hop, length, dtype)
