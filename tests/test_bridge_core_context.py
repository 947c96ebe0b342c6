"""Bridge core, context planner: which captured bars a Generate press sends, and where the take sits.

The plugin's worker calls ContextPlanner::plan on every press; these cases have answers worked
out by hand. Every pushed frame carries its own capture frame number (left) and its negation
(right), so the extracted context shows exactly which frames it holds. At 120 bpm and 48 kHz a
beat is 24,000 samples and a 4/4 bar (4 ppq) 96,000.
"""
from __future__ import annotations

import numpy as np
import pytest

from sideman.plugin_host import _bridge

SR = 48000.0
STEP = 120.0 / 60.0 / SR  # ppq per sample at 120 bpm
BAR = 96000               # samples per 4/4 bar at 120 bpm, 48 kHz


class Host:
    """Pushes numbered frames into a Capture, like a host's processBlock with a sidechain."""

    def __init__(self, capture):
        self.capture = capture
        self.frame = 0

    def push(self, n, **transport):
        left = np.arange(self.frame, self.frame + n, dtype=np.float32)
        self.capture.push(np.stack([left, -left], axis=1), **transport)
        self.frame += n

    def play(self, total, ppq, size=512, bpm=120.0, sample_rate=SR, **transport):
        """`total` frames playing from `ppq` (host sample position = ppq's sample at this tempo)."""
        step = bpm / 60.0 / sample_rate
        for n in range(0, total, size):
            self.push(min(size, total - n), ppq=ppq + n * step, sample_position=round((ppq + n * step) / step),
                      bpm=bpm, playing=True, sample_rate=sample_rate, **transport)

    def stop(self, total, ppq, bpm=120.0, **transport):
        self.push(total, ppq=ppq, sample_position=round(ppq / STEP), bpm=bpm, playing=False, **transport)


def frames_of(audio):
    np.testing.assert_array_equal(audio[:, 1], -audio[:, 0])
    return audio[:, 0].astype(np.int64)


# The transport at the press, for plans without context: playing at ppq 42 (4/4, bars from 0).
NOW = dict(ppq=42.0, bpm=120.0, playing=True)


def test_last_whole_bars_end_at_the_last_bar_line_reached():
    cap = _bridge.Capture(22 * 48000)
    Host(cap).play(42 * 24000, ppq=0.0, bar_start_ppq=0.0)  # bars 1..10 and half of bar 11
    plan = _bridge.ContextPlanner(4).plan_context(cap)
    assert (plan.first_frame, plan.num_frames) == (6 * BAR, 4 * BAR)  # bars 7..10
    assert (plan.anchor_ppq, plan.bars, plan.bpm, plan.time_signature) == (24.0, 4, 120.0, (4, 4))
    assert plan.has_context and plan.sample_rate == SR and plan.seconds == 8.0
    plan, audio = _bridge.ContextPlanner(4).plan(cap, **NOW)
    np.testing.assert_array_equal(frames_of(audio), np.arange(6 * BAR, 10 * BAR))
    assert plan.anchor_ppq == 24.0
    plan = _bridge.ContextPlanner(10).plan_context(cap)
    assert (plan.first_frame, plan.anchor_ppq, plan.bars) == (0, 0.0, 10)


def test_fewer_bars_than_asked_when_fewer_were_captured():
    cap = _bridge.Capture(22 * 48000)
    Host(cap).play(42 * 24000, ppq=0.0)
    plan = _bridge.ContextPlanner(16).plan_context(cap)
    assert (plan.first_frame, plan.num_frames, plan.anchor_ppq, plan.bars) == (0, 10 * BAR, 0.0, 10)
    assert plan.seconds == 20.0
    # The ring holds only the newest 4.5 bars: whole bars 7..10 (the clipped run starts mid-bar 6).
    cap = _bridge.Capture(4 * BAR + BAR // 2)
    Host(cap).play(42 * 24000, ppq=0.0)
    plan = _bridge.ContextPlanner(16).plan_context(cap)
    assert (plan.first_frame, plan.num_frames, plan.anchor_ppq, plan.bars) == (6 * BAR, 4 * BAR, 24.0, 4)


def test_bar_lines_follow_the_time_signature_and_the_hosts_bar_start():
    # 6/8 (three quarter notes a bar) from the host's bar start at ppq 1.0; played ppq 2 .. 11.
    cap = _bridge.Capture(20 * 48000)
    Host(cap).play(9 * 24000, ppq=2.0, time_signature=(6, 8), bar_start_ppq=1.0)
    plan = _bridge.ContextPlanner(2).plan_context(cap)
    assert (plan.anchor_ppq, plan.bars, plan.time_signature) == (4.0, 2, (6, 8))
    assert (plan.first_frame, plan.num_frames) == (2 * 24000, 6 * 24000)
    assert plan.seconds == 3.0  # 2 bars * 3 beats at 120 bpm
    plan = _bridge.ContextPlanner(3).plan_context(cap)
    assert (plan.anchor_ppq, plan.bars) == (4.0, 2)  # the bar from ppq 1 starts before the recording
    # Without a bar start from the host, bars count from ppq 0: played ppq 1 .. 13 -> lines 4, 8, 12.
    cap = _bridge.Capture(20 * 48000)
    Host(cap).play(12 * 24000, ppq=1.0)
    plan = _bridge.ContextPlanner(4).plan_context(cap)
    assert (plan.anchor_ppq, plan.bars, plan.first_frame, plan.num_frames) == (4.0, 2, 3 * 24000, 8 * 24000)


def test_bar_lines_between_samples_start_at_the_first_sample_on_or_after_them():
    sr, bpm = 44100.0, 97.0  # 27,278.35... samples per beat
    spb = sr * 60.0 / bpm
    cap = _bridge.Capture(int(30 * sr))
    Host(cap).play(int(np.ceil(17 * spb)), ppq=0.0, bpm=bpm, sample_rate=sr)
    plan = _bridge.ContextPlanner(3).plan_context(cap)
    assert (plan.anchor_ppq, plan.bars, plan.bpm, plan.sample_rate) == (4.0, 3, bpm, sr)
    assert plan.first_frame == int(np.ceil(4 * spb))
    assert plan.first_frame + plan.num_frames == int(np.ceil(16 * spb))
    assert plan.seconds == pytest.approx(12 * 60.0 / bpm)


def test_a_bar_line_a_thousandth_of_a_sample_ahead_counts_as_reached():
    # The host's ppq sits 1e-7 sample behind the grid: the 4th bar line is "reached" by the
    # last frame although the arithmetic leaves it a hair short.
    cap = _bridge.Capture(5 * BAR)
    Host(cap).play(4 * BAR, ppq=-1e-7 * STEP)
    plan = _bridge.ContextPlanner(8).plan_context(cap)
    assert (plan.first_frame, plan.num_frames, plan.anchor_ppq, plan.bars) == (0, 4 * BAR, 0.0, 4)
    # A hundredth of a sample short is short: three bars, from the first sample after line 0.
    cap = _bridge.Capture(5 * BAR)
    Host(cap).play(4 * BAR, ppq=-1e-2 * STEP)
    plan = _bridge.ContextPlanner(8).plan_context(cap)
    assert (plan.first_frame, plan.num_frames, plan.anchor_ppq, plan.bars) == (1, 3 * BAR, 0.0, 3)


def test_less_than_a_bar_plans_without_context_from_the_transport():
    cap = _bridge.Capture(10 * BAR)
    Host(cap).play(3 * 24000, ppq=0.0)  # three beats
    planner = _bridge.ContextPlanner(4)
    assert planner.plan_context(cap) is None
    plan, audio = planner.plan(cap, ppq=3.0, bpm=120.0, playing=True)
    assert audio is None and not plan.has_context and plan.num_frames == 0
    assert (plan.anchor_ppq, plan.bars, plan.bpm, plan.time_signature, plan.sample_rate) == \
        (4.0, 4, 120.0, (4, 4), SR)  # from the next bar line
    # Stopped: from the start of the bar the play head is in; on a bar line: that line.
    assert planner.plan_without_context(ppq=5.5, bpm=120.0, playing=False).anchor_ppq == 4.0
    assert planner.plan_without_context(ppq=8.0, bpm=120.0, playing=False).anchor_ppq == 8.0
    assert planner.plan_without_context(ppq=8.0, bpm=120.0, playing=True).anchor_ppq == 8.0
    assert planner.plan_without_context(ppq=8.0 - 1e-4 * STEP, bpm=120.0, playing=True).anchor_ppq == 8.0
    assert planner.plan_without_context(ppq=8.0 + 1e-4 * STEP, bpm=120.0, playing=False).anchor_ppq == 8.0
    # 3/4 from the host's bar start at ppq 1.0, at 90 bpm and 44.1 kHz.
    plan = planner.plan_without_context(ppq=5.0, bpm=90.0, playing=True, sample_rate=44100.0,
                                        time_signature=(3, 4), bar_start_ppq=1.0)
    assert (plan.anchor_ppq, plan.bars, plan.bpm, plan.time_signature, plan.sample_rate) == \
        (7.0, 4, 90.0, (3, 4), 44100.0)
    assert plan.seconds == pytest.approx(4 * 3 * 60.0 / 90.0)
    # Nothing captured at all.
    plan, audio = _bridge.ContextPlanner(2).plan(_bridge.Capture(1000), ppq=0.0, bpm=120.0, playing=False)
    assert audio is None and (plan.anchor_ppq, plan.bars) == (0.0, 2)


def test_after_a_seek_with_less_than_a_bar_the_bars_before_it_are_sent():
    cap = _bridge.Capture(20 * BAR)
    host = Host(cap)
    host.play(5 * BAR, ppq=0.0)               # bars 1..5 (ppq 0..20)
    host.play(2 * 24000, ppq=100.0)           # seek, then half a bar
    plan, audio = _bridge.ContextPlanner(4).plan(cap, **NOW)
    assert (plan.anchor_ppq, plan.bars, plan.first_frame) == (4.0, 4, BAR)
    np.testing.assert_array_equal(frames_of(audio), np.arange(BAR, 5 * BAR))
    # Once the new run holds a whole bar, it is the context (even if shorter than max_bars).
    host.play(7 * 24000, ppq=102.0)           # ppq 102..109: bar 100..104 and 104..108
    plan = _bridge.ContextPlanner(4).plan_context(cap)
    assert (plan.anchor_ppq, plan.bars, plan.first_frame, plan.num_frames) == (100.0, 2, 5 * BAR, 2 * BAR)


def test_a_loop_wrap_just_before_the_press_uses_the_previous_pass():
    cap = _bridge.Capture(20 * BAR)
    host = Host(cap)
    for _ in range(3):                        # loop over ppq 0..8 (two bars), three passes
        host.play(2 * BAR, ppq=0.0, size=1000, loop=(0.0, 8.0))
    host.play(BAR // 2, ppq=0.0, loop=(0.0, 8.0))  # two beats into the fourth pass
    plan = _bridge.ContextPlanner(4).plan_context(cap)
    assert (plan.anchor_ppq, plan.bars, plan.first_frame, plan.num_frames) == (0.0, 2, 4 * BAR, 2 * BAR)


def test_stopping_before_the_press_sends_what_was_played():
    cap = _bridge.Capture(20 * BAR)
    host = Host(cap)
    host.play(4 * BAR + 24000, ppq=0.0)       # ppq 0..17
    host.stop(10000, ppq=17.0)
    plan, audio = _bridge.ContextPlanner(2).plan(cap, ppq=17.0, bpm=120.0, playing=False)
    assert (plan.anchor_ppq, plan.bars) == (8.0, 2)
    np.testing.assert_array_equal(frames_of(audio), np.arange(2 * BAR, 4 * BAR))


def test_frames_after_the_press_are_ignored():
    cap = _bridge.Capture(20 * BAR)
    host = Host(cap)
    host.play(5 * BAR, ppq=0.0)
    press = int(10.0 / STEP)                  # pressed at ppq 10 (the audio thread's frame)
    plan = _bridge.ContextPlanner(4).plan_context(cap, end_frame=press)
    assert (plan.anchor_ppq, plan.bars, plan.first_frame, plan.num_frames) == (0.0, 2, 0, 2 * BAR)
    assert _bridge.ContextPlanner(4).plan_context(cap, end_frame=BAR - 1) is None
    assert _bridge.ContextPlanner(4).plan_context(cap, end_frame=BAR).bars == 1
    # A seek after the press does not count either: the run it starts begins at the press.
    host.play(3 * BAR, ppq=200.0)
    plan = _bridge.ContextPlanner(8).plan_context(cap, end_frame=5 * BAR)
    assert (plan.anchor_ppq, plan.bars) == (0.0, 5)


def test_max_bars_must_be_positive():
    with pytest.raises(ValueError):
        _bridge.ContextPlanner(0)
    assert _bridge.ContextPlanner(16).max_bars == 16
