"""Take post-processing with pyo's offline server: length, resampling, loops, fades, loudness."""
import numpy as np
import pytest

from sideman.plugin_host.postprocess import bar_aligned_seconds, loudness_gain, process_take, render_take
from sideman.numerics.loudness import integrated_loudness


def sine(freq, seconds, sr=48000, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, x])


def test_bar_alignment():
    assert bar_aligned_seconds(7.9, 120, 4) == pytest.approx(8.0)
    assert bar_aligned_seconds(0.1, 120, 3) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        bar_aligned_seconds(4.0, 0, 4)


def test_resampled_length_pitch_and_fades():
    out = render_take(sine(1000, 2.0), 48000, 44100, 2.0)
    assert out.shape == (2, 88200)
    spectrum = np.abs(np.fft.rfft(out[0, 22050:66150]))
    assert abs(np.argmax(spectrum) * 44100 / 44100 - 1000) <= 1  # 1-s window: 1 Hz bins
    assert abs(out[0, 0]) < 1e-3 and abs(out[0, -1]) < 1e-3  # faded edges
    assert np.abs(out[0, 22050:66150]).max() == pytest.approx(0.3, abs=0.01)


def test_short_takes_loop_to_the_requested_length():
    take = sine(500, 0.5)
    out = render_take(take, 48000, 48000, 2.0)
    assert out.shape == (2, 96000)
    for start in (24000 + 100, 48000 + 100, 72000 + 100):  # later passes of the loop sound
        assert np.abs(out[0, start:start + 1000]).max() > 0.25


def test_loudness_is_matched_below_the_context():
    take, context = sine(220, 3.0, amp=0.5), sine(880, 3.0, amp=0.05)
    gain = loudness_gain(take, context, 48000)
    out = process_take(take, 48000, context, 48000, 3.0, 120, 3)
    lt, lc = integrated_loudness(out, 48000), integrated_loudness(context, 48000)
    assert out.shape == (2, 144000) and gain < 1
    assert lt == pytest.approx(lc - 3.0, abs=0.5)
    assert loudness_gain(take, None, 48000) == 1.0
    assert loudness_gain(take, np.zeros_like(take), 48000) == 1.0
