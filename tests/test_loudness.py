"""Tests for sideman.numerics.loudness (ITU-R BS.1770-4 integrated loudness)."""

import math

import numpy as np
import pytest

from sideman.numerics import loudness as ld


def sine(sr, seconds=5.0, freq=997.0, amp=1.0):
    t = np.arange(int(sr * seconds)) / sr
    return amp * np.sin(2.0 * np.pi * freq * t)


def test_k_weighting_reproduces_itu_table_at_48k():
    sos = ld.k_weighting_sos(48000)
    shelf = [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585]
    highpass = [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]
    np.testing.assert_allclose(sos[0], shelf, atol=1e-12)
    np.testing.assert_allclose(sos[1], highpass, atol=1e-12)


@pytest.mark.parametrize("sr", [48000, 44100, 96000])
def test_full_scale_997hz_sine_one_channel(sr):
    x = sine(sr)
    assert ld.integrated_loudness(x, sr) == pytest.approx(-3.01, abs=0.01)
    stereo_one_side = np.stack([x, np.zeros_like(x)])
    assert ld.integrated_loudness(stereo_one_side, sr) == pytest.approx(-3.01, abs=0.01)
    # Both channels: twice the power, +3.01 dB.
    assert ld.integrated_loudness(np.stack([x, x]), sr) == pytest.approx(0.0, abs=0.01)


def test_low_sample_rate_design_stays_close():
    # Bilinear warping near Nyquist moves the shelf a little at 16 kHz.
    assert ld.integrated_loudness(sine(16000), 16000) == pytest.approx(-3.01, abs=0.06)


def test_amplitude_scaling_is_exact():
    sr = 48000
    a = ld.integrated_loudness(sine(sr, amp=1.0), sr)
    b = ld.integrated_loudness(sine(sr, amp=0.5), sr)
    assert a - b == pytest.approx(20.0 * math.log10(2.0), abs=1e-9)


@pytest.mark.parametrize("sr", [48000, 44100])
@pytest.mark.parametrize("channels", [1, 2])
def test_agrees_with_pyloudnorm_on_noise(sr, channels):
    pyln = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(sr + channels)
    x = 0.1 * rng.standard_normal((channels, sr * 6))
    x[:, : sr * 2] *= 0.05  # a quiet third exercises the gates
    ours = ld.integrated_loudness(x, sr)
    theirs = pyln.Meter(sr).integrated_loudness(x.T if channels > 1 else x[0])
    assert ours == pytest.approx(theirs, abs=0.1)


def test_relative_gate_ignores_quiet_part():
    sr = 48000
    rng = np.random.default_rng(0)
    loud = 0.2 * rng.standard_normal((2, 4 * sr))
    quiet = 0.002 * rng.standard_normal((2, 4 * sr))  # -40 dB, below the relative gate
    alone = ld.integrated_loudness(loud, sr)
    both = ld.integrated_loudness(np.concatenate([loud, quiet], axis=1), sr)
    assert both == pytest.approx(alone, abs=0.2)  # ungated it would be ~3 dB lower


def test_silence_is_minus_inf_and_stays_silent():
    sr = 44100
    silent = np.zeros((2, sr), dtype=np.float32)
    assert ld.integrated_loudness(silent, sr) == -math.inf
    out = ld.normalize_loudness(silent, sr, -20.0)
    assert out.dtype == np.float32 and not np.any(out) and np.all(np.isfinite(out))
    noise = np.random.default_rng(1).standard_normal((2, sr))
    np.testing.assert_array_equal(ld.match_loudness(noise, silent, sr), noise)
    assert not np.any(ld.match_loudness(silent, noise, sr))


@pytest.mark.parametrize("sr", [48000, 44100])
def test_normalize_hits_target(sr):
    x = 0.3 * np.random.default_rng(2).standard_normal((2, 3 * sr)).astype(np.float32)
    for target in (-20.0, -14.0, -30.0):
        out = ld.normalize_loudness(x, sr, target)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert ld.integrated_loudness(out, sr) == pytest.approx(target, abs=0.05)


def test_match_loudness():
    sr = 48000
    rng = np.random.default_rng(3)
    source = 0.01 * rng.standard_normal(2 * sr)
    reference = np.stack([sine(sr, 2.0, 440.0, 0.5), sine(sr, 2.0, 660.0, 0.3)])
    out = ld.match_loudness(source, reference, sr)
    assert ld.integrated_loudness(out, sr) == pytest.approx(ld.integrated_loudness(reference, sr), abs=0.05)


def test_rejects_too_short_and_bad_shapes():
    with pytest.raises(ValueError):
        ld.integrated_loudness(np.ones(100), 48000)
    with pytest.raises(ValueError):
        ld.integrated_loudness(np.ones((6, 48000)), 48000)
