"""Integrated loudness after ITU-R BS.1770-4, and loudness normalisation.

Audio arrays are float, either mono ``(N,)`` or channels-first ``(C, N)`` with
``C <= 5`` in the BS.1770 channel order (L, R, C, Ls, Rs; weights 1, 1, 1, 1.41,
1.41). Sample rates are in Hz, loudness in LUFS (= LKFS), gains in dB.

K-weighting. BS.1770-4 tabulates the two pre-filter biquads (a high shelf for
the head, the "RLB" high-pass) only at 48 kHz. We invert those tables into
analogue second-order prototypes

    H(s) = (v_high s^2 + v_band (w0/Q) s + v_low w0^2) / (s^2 + (w0/Q) s + w0^2)

(closed form, see :func:`analog_prototype`) and discretise them at any rate with
the bilinear transform, prewarped at ``w0``. At 48 kHz this gives back the
standard's coefficients to rounding error.

Gating: 400 ms blocks with 75 % overlap (100 ms hop), absolute gate -70 LUFS,
relative gate 10 LU below the loudness of the blocks that pass the absolute gate.
Signals with no block above the gates (silence) measure ``-inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

BLOCK_S = 0.4
HOP_S = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LOUDNESS_OFFSET_DB = -0.691
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)

# BS.1770-4 Tables 1 and 2: (b0, b1, b2), (1, a1, a2) at 48 kHz.
_ITU_RATE = 48000.0
_ITU_SHELF = (
    (1.53512485958697, -2.69169618940638, 1.19839281085285),
    (1.0, -1.69065929318241, 0.73248077421585),
)
_ITU_HIGHPASS = (
    (1.0, -2.0, 1.0),
    (1.0, -1.99004745483398, 0.99007225036621),
)


@dataclass(frozen=True)
class AnalogBiquad:
    """Analogue prototype of one biquad (see the module docstring).

    f0: natural frequency in Hz; q: quality factor; v_high, v_band, v_low:
    numerator weights of the s^2, (w0/Q) s and w0^2 terms (linear gains).
    """

    f0: float
    q: float
    v_high: float
    v_band: float
    v_low: float


def analog_prototype(b, a, sr: float) -> AnalogBiquad:
    """Invert a bilinear-transformed biquad ``(b, a)`` at ``sr`` Hz.

    With K = tan(pi f0 / sr) and a0 = 1 + K/Q + K^2 the bilinear transform gives
    1 + a1 + a2 = 4 K^2 / a0, 1 - a1 + a2 = 4 / a0, 1 - a2 = 2 (K/Q) / a0 and
    b0 + b1 + b2 = 4 v_low K^2 / a0, b0 - b1 + b2 = 4 v_high / a0,
    b0 - b2 = 2 v_band (K/Q) / a0, which we solve for the parameters.
    """
    b0, b1, b2 = (float(v) for v in b)
    a1, a2 = float(a[1]) / float(a[0]), float(a[2]) / float(a[0])
    b0, b1, b2 = (v / float(a[0]) for v in (b0, b1, b2))
    k = math.sqrt((1.0 + a1 + a2) / (1.0 - a1 + a2))
    a0 = 4.0 / (1.0 - a1 + a2)
    k_over_q = (1.0 - a2) * a0 / 2.0
    return AnalogBiquad(
        f0=sr / math.pi * math.atan(k),
        q=k / k_over_q,
        v_high=(b0 - b1 + b2) * a0 / 4.0,
        v_band=(b0 - b2) * a0 / (2.0 * k_over_q),
        v_low=(b0 + b1 + b2) * a0 / (4.0 * k * k),
    )


def bilinear_biquad(proto: AnalogBiquad, sr: float) -> tuple[np.ndarray, np.ndarray]:
    """Discretise an analogue prototype at ``sr`` Hz (bilinear, prewarped at f0).

    Returns ``(b, a)``, each of shape (3,), with ``a[0] == 1``.
    """
    if not proto.f0 < sr / 2.0:
        raise ValueError(f"sample rate {sr} Hz too low for a {proto.f0:.1f} Hz filter")
    k = math.tan(math.pi * proto.f0 / sr)
    kq, k2 = k / proto.q, k * k
    a0 = 1.0 + kq + k2
    b = np.array([
        proto.v_high + proto.v_band * kq + proto.v_low * k2,
        2.0 * (proto.v_low * k2 - proto.v_high),
        proto.v_high - proto.v_band * kq + proto.v_low * k2,
    ]) / a0
    a = np.array([1.0, 2.0 * (k2 - 1.0) / a0, (1.0 - kq + k2) / a0])
    return b, a


def k_weighting_sos(sr: float) -> np.ndarray:
    """K-weighting (shelf then RLB high-pass) as second-order sections, shape (2, 6)."""
    stages = []
    for b_itu, a_itu in (_ITU_SHELF, _ITU_HIGHPASS):
        b, a = bilinear_biquad(analog_prototype(b_itu, a_itu, _ITU_RATE), sr)
        stages.append(np.concatenate([b, a]))
    return np.stack(stages)


def _as_channels(audio) -> np.ndarray:
    """Float64 view of ``audio`` as (C, N); mono (N,) becomes (1, N)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or not 1 <= x.shape[0] <= len(CHANNEL_WEIGHTS):
        raise ValueError(f"expected (N,) or (C, N) audio with C <= 5, got {np.shape(audio)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or inf")
    return x


def block_powers(audio, sr: float) -> np.ndarray:
    """Mean-square of the K-weighted signal per gating block.

    audio: (N,) or (C, N). Returns (C, J) with J = floor((N - B) / H) + 1 blocks,
    B = round(0.4 sr) samples and block starts at round(j * 0.1 sr).
    """
    x = _as_channels(audio)
    block = int(round(BLOCK_S * sr))
    n = x.shape[1]
    if n < block:
        raise ValueError(f"need at least {BLOCK_S * 1000:.0f} ms of audio, got {n / sr * 1000:.1f} ms")
    y = signal.sosfilt(k_weighting_sos(sr), x, axis=-1)
    energy = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y * y, axis=-1)], axis=-1)
    n_blocks = int(math.floor((n - block) / (HOP_S * sr) + 1e-9)) + 1
    starts = np.round(np.arange(n_blocks) * HOP_S * sr).astype(np.int64)
    return (energy[:, starts + block] - energy[:, starts]) / block


def _loudness_of_power(power):
    """-0.691 + 10 log10(power), -inf for zero power (no warning)."""
    with np.errstate(divide="ignore"):
        return LOUDNESS_OFFSET_DB + 10.0 * np.log10(power)


def integrated_loudness(audio, sr: float) -> float:
    """Gated integrated loudness in LUFS of ``audio`` ((N,) or (C, N)) at ``sr`` Hz.

    Returns ``-inf`` when no block passes the absolute gate (e.g. silence).
    Raises ValueError for audio shorter than one 400 ms block.
    """
    z = block_powers(audio, sr)
    weights = np.asarray(CHANNEL_WEIGHTS[: z.shape[0]])[:, None]
    weighted = np.sum(weights * z, axis=0)
    block_loudness = _loudness_of_power(weighted)
    above_abs = block_loudness > ABSOLUTE_GATE_LUFS
    if not np.any(above_abs):
        return -math.inf
    relative_gate = float(_loudness_of_power(weighted[above_abs].mean())) + RELATIVE_GATE_LU
    gated = above_abs & (block_loudness > relative_gate)
    return float(_loudness_of_power(weighted[gated].mean()))


def apply_gain_db(audio, gain_db: float) -> np.ndarray:
    """``audio`` scaled by ``gain_db`` dB, same shape; float dtypes kept, others -> float64."""
    x = np.asarray(audio)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return (x.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(dtype)


def normalize_loudness(audio, sr: float, target_lufs: float) -> np.ndarray:
    """Scale ``audio`` ((N,) or (C, N)) so its integrated loudness is ``target_lufs``.

    A single gain is applied to all channels; no limiting is done, so peaks may
    exceed 1.0. Silent audio (loudness -inf) is returned unchanged (a copy).
    """
    loudness = integrated_loudness(audio, sr)
    if not math.isfinite(loudness):
        return apply_gain_db(audio, 0.0)
    return apply_gain_db(audio, target_lufs - loudness)


def match_loudness(source, reference, sr: float) -> np.ndarray:
    """Scale ``source`` so its integrated loudness equals that of ``reference``.

    Both at ``sr`` Hz, each (N,) or (C, N) (lengths may differ). If either is
    silent (-inf LUFS) ``source`` is returned unchanged (a copy).
    """
    target = integrated_loudness(reference, sr)
    if not math.isfinite(target):
        return apply_gain_db(source, 0.0)
    return normalize_loudness(source, sr, target)
