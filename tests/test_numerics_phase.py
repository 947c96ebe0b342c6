"""Phase from STFT magnitudes (numerics.phase): known answers on tones between bins, the
oracle deviation's inverse, and agreement with the torch STFT the codec trains with."""
import numpy as np
import pytest

from sideman.numerics.phase import (MAX_DEVIATION, audio_from_magnitude, instantaneous_deviation, integrate_phase,
                                    peak_deviation)
from sideman.numerics.spectral import stft

N_FFT, HOP, RATE = 2048, 512, 48_000


def tone(freqs, frames=64, amps=None):
    t = np.arange(frames * HOP) / RATE
    amps = amps or [0.3] * len(freqs)
    return sum(a * np.sin(2 * np.pi * f * t + 0.7 * i) for i, (f, a) in enumerate(zip(freqs, amps)))[None]


@pytest.mark.parametrize("bin_position", [9.0, 9.3, 9.5, 40.77])
def test_peak_deviation_finds_a_partial_between_bins(bin_position):
    mag = np.abs(stft(tone([bin_position * RATE / N_FFT]), N_FFT, HOP))
    deviation = peak_deviation(mag)[0, :, 4:-4]  # away from the edges
    k = int(round(bin_position))
    for neighbour in (k - 1, k, k + 1):  # every bin of the partial turns at its frequency
        expected = np.clip(bin_position - neighbour, -MAX_DEVIATION, MAX_DEVIATION)
        assert np.abs(deviation[neighbour] - expected).max() < 0.06


def test_two_partials_each_keep_their_bins_and_silence_keeps_centres():
    mag = np.abs(stft(tone([20.25 * RATE / N_FFT, 60.6 * RATE / N_FFT]), N_FFT, HOP))
    deviation = peak_deviation(mag)[0, :, 8]
    assert deviation[20] == pytest.approx(0.25, abs=0.06) and deviation[61] == pytest.approx(-0.4, abs=0.06)
    assert deviation[40] == pytest.approx(np.clip(20.25 - 40, -MAX_DEVIATION, MAX_DEVIATION), abs=0.06)  # nearer peak
    assert not peak_deviation(np.zeros((1, 1025, 5))).any()  # no peak anywhere: bin centres


def test_integrate_phase_is_the_running_sum_of_instantaneous_frequency():
    deviation = np.random.default_rng(0).uniform(-0.9, 0.9, (2, 1025, 30))
    phase = integrate_phase(deviation, N_FFT, HOP)
    k = np.arange(1025)[:, None]
    advance = np.diff(phase, axis=-1)
    expected = 2 * np.pi * HOP / N_FFT * (k + deviation[..., 1:])
    assert np.allclose(np.angle(np.exp(1j * (advance - expected))), 0, atol=1e-9)
    assert np.allclose(np.angle(np.exp(1j * (phase[..., 0] - np.pi * np.arange(1025) - 2 * np.pi * HOP / N_FFT *
                                             (np.arange(1025) + deviation[..., 0])))), 0, atol=1e-9)
    with pytest.raises(ValueError, match="multiple of hop"):
        integrate_phase(deviation, 2000, 512)


def test_instantaneous_deviation_inverts_the_integrated_phase():
    audio = tone([9.4 * RATE / N_FFT])
    measured = instantaneous_deviation(stft(audio, N_FFT, HOP), N_FFT, HOP)
    assert np.abs(measured[0, 9:11, 4:-4] - (9.4 - np.arange(9, 11))[:, None]).max() < 0.02


def test_audio_from_magnitude_rebuilds_tones_at_their_pitch_and_level():
    """A spread chord's own magnitudes (partials 14-33 bins apart) -> audio whose spectrum
    has the same peaks at the same levels (spectral convergence small), unlike the same
    magnitudes turning at bin centres."""
    audio = tone([220.0, 554.4, 1318.5], amps=[0.3, 0.2, 0.1])
    mag = np.abs(stft(audio, N_FFT, HOP))
    rebuilt = audio_from_magnitude(mag, N_FFT, HOP, audio.shape[-1])
    assert rebuilt.shape == audio.shape
    inner = slice(4, -4)
    sc = lambda x: (np.linalg.norm(np.abs(stft(x, N_FFT, HOP))[..., inner] - mag[..., inner])  # noqa: E731
                    / np.linalg.norm(mag[..., inner]))
    assert sc(rebuilt) < 0.15
    from sideman.numerics.spectral import istft
    zero_dev = istft(mag * np.exp(1j * integrate_phase(np.zeros_like(mag), N_FFT, HOP)), N_FFT, HOP, audio.shape[-1])
    assert sc(rebuilt) < 0.5 * sc(zero_dev)
