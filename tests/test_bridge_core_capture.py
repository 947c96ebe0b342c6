"""Bridge core, capture buffer: recorded context with transport anchors, extracted by frame or ppq.

Every pushed frame carries its own capture frame number (left) and its negation (right), so an
extracted region shows exactly which frames it holds.
"""
from __future__ import annotations

import numpy as np
import pytest

from sideman.plugin_host import _bridge

SR = 48000.0
STEP = 120.0 / 60.0 / SR  # ppq per sample at 120 bpm


class Host:
    """Pushes numbered frames into a Capture, like a host's processBlock with a sidechain."""

    def __init__(self, capture):
        self.capture = capture
        self.frame = 0

    def push(self, n, **transport):
        left = np.arange(self.frame, self.frame + n, dtype=np.float32)
        self.capture.push(np.stack([left, -left], axis=1), **transport)
        self.frame += n

    def play(self, total, size, ppq, bpm=120.0, sample_position=0, **transport):
        step = bpm / 60.0 / transport.get("sample_rate", SR)
        for n in range(0, total, size):
            self.push(min(size, total - n), ppq=ppq + n * step, sample_position=sample_position + n, bpm=bpm,
                      playing=True, **transport)


def frames_of(audio):
    np.testing.assert_array_equal(audio[:, 1], -audio[:, 0])
    return audio[:, 0].astype(np.int64)


def test_continuous_transport_is_one_anchor_and_latest_region_is_anchored():
    cap = _bridge.Capture(100000)
    Host(cap).play(48000, 512, ppq=8.0, sample_position=1_000_000, time_signature=(3, 4), bar_start_ppq=6.0)
    assert cap.frames_written == 48000
    (run,) = cap.anchors()
    assert (run.frame, run.num_frames, run.ppq, run.sample_position) == (0, 48000, 8.0, 1_000_000)
    assert (run.bpm, run.time_signature, run.playing, run.sample_rate, run.bar_start_ppq) == \
        (120.0, (3, 4), True, SR, 6.0)
    audio, anchor = cap.extract_latest(1000)
    assert audio.shape == (1000, 2) and audio.dtype == np.float32
    np.testing.assert_array_equal(frames_of(audio), np.arange(47000, 48000))
    assert anchor.frame == 47000 and anchor.num_frames == 1000
    assert anchor.ppq == pytest.approx(8.0 + 47000 * STEP, abs=1e-12)
    assert anchor.sample_position == 1_047_000
    assert anchor.bar_start_ppq == pytest.approx(9.0)  # 3/4 bars from 6.0: the bar holding ppq 9.958
    assert cap.extract_latest(48001) is None  # more than was recorded


def test_discontinuities_start_new_anchors():
    cap = _bridge.Capture(100000)
    host = Host(cap)
    host.play(2048, 512, ppq=0.0)                                 # run 0
    host.play(1024, 256, ppq=10.0, sample_position=480000)        # seek: run 1
    host.play(1024, 512, ppq=10.0 + 1024 * STEP, sample_position=481024, bpm=90.0)  # tempo change: run 2
    host.push(512, ppq=11.0, sample_position=481536, bpm=90.0, playing=False)        # stop: run 3
    host.push(512, ppq=11.0, sample_position=481536, bpm=90.0, playing=False)        # still stopped: same run
    host.play(512, 512, ppq=11.0, sample_position=481536, bpm=90.0)                  # start: run 4
    step90 = 90.0 / 60.0 / SR
    host.play(512, 512, ppq=11.0 + 512 * step90, sample_position=482048, bpm=90.0,
              time_signature=(7, 8))                                                 # meter change: run 5
    runs = cap.anchors()
    assert [(r.frame, r.num_frames) for r in runs] == \
        [(0, 2048), (2048, 1024), (3072, 1024), (4096, 1024), (5120, 512), (5632, 512)]
    assert [r.ppq for r in runs] == pytest.approx([0.0, 10.0, 10.0 + 1024 * STEP, 11.0, 11.0, 11.0 + 512 * step90])
    assert [r.bpm for r in runs] == [120.0, 120.0, 90.0, 90.0, 90.0, 90.0]
    assert [r.playing for r in runs] == [True, True, True, False, True, True]
    assert [r.time_signature for r in runs] == [(4, 4)] * 5 + [(7, 8)]
    assert runs[1].sample_position == 480000
    # Host ppq rounding of less than half a sample does not split a run.
    cap2 = _bridge.Capture(10000)
    h2 = Host(cap2)
    for k in range(8):
        h2.push(100, ppq=k * 100 * STEP + (0.2 if k % 2 else -0.2) * STEP, sample_position=k * 100, bpm=120.0,
                playing=True)
    assert len(cap2.anchors()) == 1
    # Nor does Ardour's (up to ~1e-4 beat, a few samples): one run, anchored at the first block.
    cap3 = _bridge.Capture(40000)
    h3 = Host(cap3)
    rng = np.random.default_rng(1)
    for k in range(30):
        jitter = 0.0 if k == 0 else rng.uniform(-1e-4, 1e-4)
        h3.push(1024, ppq=k * 1024 * STEP + jitter, sample_position=k * 1024, bpm=120.0, playing=True)
    (run,) = cap3.anchors()
    assert run.ppq == 0.0 and run.num_frames == 30 * 1024


def test_loop_wrap_inside_a_block_splits_the_anchor_at_the_exact_frame():
    cap = _bridge.Capture(200000)
    host = Host(cap)
    loop = (1.0, 2.5)  # 36000 samples; the wrap at ppq 2.5 falls inside the block starting at 59904
    ppq, sample_pos = 0.0, 0
    for _ in range(0, 100000, 512):
        host.push(512, ppq=ppq, sample_position=sample_pos, bpm=120.0, playing=True, loop=loop)
        ppq += 512 * STEP
        sample_pos += 512
        if ppq >= loop[1]:
            ppq -= loop[1] - loop[0]
            sample_pos -= 36000
    runs = cap.anchors()
    assert [r.frame for r in runs][:3] == [0, 60000, 96000]
    assert runs[1].ppq == pytest.approx(1.0) and runs[1].sample_position == 24000
    assert all(r.playing for r in runs)
    # Ranges come from the most recent pass that holds all of them: the third pass (frames 96000
    # to 100352, ppq 1.0 to 1.18) is too short for [1.0, 2.5), the second one holds it.
    assert cap.frames_written == 100352
    audio, anchor = cap.extract_ppq_range(1.0, 2.5)
    np.testing.assert_array_equal(frames_of(audio), np.arange(60000, 96000))
    assert anchor.ppq == pytest.approx(1.0) and anchor.num_frames == 36000 and anchor.sample_position == 24000
    audio, _ = cap.extract_ppq_range(1.0, 1.1)
    np.testing.assert_array_equal(frames_of(audio), np.arange(96000, 96000 + 2400))


def test_ppq_range_gives_exactly_the_frames_in_range():
    cap = _bridge.Capture(100000)
    Host(cap).play(96000, 441, ppq=4.0)
    audio, anchor = cap.extract_ppq_range(5.0, 6.5)  # frames 24000 .. 59999
    np.testing.assert_array_equal(frames_of(audio), np.arange(24000, 60000))
    assert anchor.frame == 24000 and anchor.ppq == pytest.approx(5.0, abs=1e-12) and anchor.sample_position == 24000
    # A range starting between frames begins at the first frame at or after it.
    audio, anchor = cap.extract_ppq_range(5.0 + 0.5 * STEP, 5.0 + 10.5 * STEP)
    np.testing.assert_array_equal(frames_of(audio), np.arange(24001, 24011))
    assert anchor.ppq == pytest.approx(5.0 + STEP, abs=1e-12)
    assert cap.extract_ppq_range(3.0, 5.0) is None   # starts before the recording
    assert cap.extract_ppq_range(7.0, 9.0) is None   # ends after it
    assert cap.extract_ppq_range(6.0, 6.0) is None   # empty


def test_stopped_frames_are_never_part_of_a_ppq_range():
    cap = _bridge.Capture(100000)
    host = Host(cap)
    host.push(4800, ppq=2.0, sample_position=0, bpm=120.0, playing=False)
    assert cap.extract_ppq_range(2.0, 2.01) is None
    host.play(4800, 480, ppq=2.0)
    audio, _ = cap.extract_ppq_range(2.0, 2.1)
    np.testing.assert_array_equal(frames_of(audio), np.arange(4800, 4800 + 2400))


def test_ring_keeps_only_the_newest_frames():
    cap = _bridge.Capture(10000)
    Host(cap).play(25000, 333, ppq=0.0)
    assert cap.frames_written == 25000
    audio, anchor = cap.extract_latest(10000)
    np.testing.assert_array_equal(frames_of(audio), np.arange(15000, 25000))  # across the ring's wrap
    assert anchor.ppq == pytest.approx(15000 * STEP) and anchor.sample_position == 15000
    assert cap.extract_latest(10001) is None
    assert cap.extract_frames(14999, 10) is None
    audio, _ = cap.extract_frames(15000, 10)
    np.testing.assert_array_equal(frames_of(audio), np.arange(15000, 15010))
    (run,) = cap.anchors()  # clipped to the oldest held frame
    assert (run.frame, run.num_frames) == (15000, 10000) and run.ppq == pytest.approx(15000 * STEP)


def test_anchor_ring_overflow_drops_the_frames_it_can_no_longer_place():
    cap = _bridge.Capture(100000, max_anchors=2)
    host = Host(cap)
    for k in range(5):  # five seeks: five runs of 1000 frames
        host.play(1000, 500, ppq=10.0 * k, sample_position=100000 * k)
    runs = cap.anchors()
    assert [(r.frame, r.ppq) for r in runs] == [(3000, 30.0), (4000, 40.0)]
    assert cap.extract_frames(2999, 2) is None  # its anchor is gone
    assert cap.extract_latest(2001) is None
    audio, anchor = cap.extract_latest(2000)
    assert anchor.frame == 3000 and anchor.ppq == 30.0
    assert cap.extract_ppq_range(20.0, 20.01) is None


def test_mono_input_is_recorded_on_both_sides_and_clear_forgets():
    cap = _bridge.Capture(1000)
    mono = np.linspace(-1, 1, 100, dtype=np.float32)
    cap.push(mono, ppq=0.0, sample_position=0, bpm=120.0, playing=True)
    audio, _ = cap.extract_latest(100)
    np.testing.assert_array_equal(audio, np.stack([mono, mono], axis=1))
    cap.clear()
    assert cap.extract_latest(1) is None and cap.anchors() == []
    cap.push(mono[:10, None], ppq=100 * STEP, sample_position=100, bpm=120.0, playing=True)
    audio, anchor = cap.extract_latest(10)
    np.testing.assert_array_equal(audio[:, 0], mono[:10])
    assert anchor.frame == 100 and cap.extract_latest(11) is None
    with pytest.raises(ValueError):
        cap.push(np.zeros((10, 3), np.float32), ppq=0.0, sample_position=0, bpm=120.0, playing=True)
    with pytest.raises(ValueError):
        _bridge.Capture(0)
