"""Post-processing of a take before it goes back to the DAW, rendered by an offline pyo server.

Steps: loudness matching to the context (ITU-R BS.1770), resampling to the DAW's sample
rate, bar-aligned trimming or looping to the requested length, and short fades at the
region's edges. Arrays are float32 (2, samples).
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

os.environ.setdefault("PYO_GUI_WX", "0")
import pyo  # noqa: E402

from sideman.numerics.loudness import integrated_loudness  # noqa: E402

LOOP_LEAD = 0.05  # seconds rendered ahead of a loop and cut off (the render's fade-in)
FADE_SECONDS = 0.01
CONTEXT_OFFSET_DB = -3.0  # a take sits this far below its context's integrated loudness
MAX_PEAK = 0.99  # `generate` and `demo` never write a sample above this (-0.09 dBFS)


def bar_seconds(bpm: float, beats_per_bar: int) -> float:
    """The length of one bar in seconds; ValueError unless it is a finite positive number."""
    if not (math.isfinite(bpm) and bpm > 0 and beats_per_bar > 0):
        raise ValueError(f"need a finite bpm > 0 and beats_per_bar > 0 (got {bpm}, {beats_per_bar})")
    bar = beats_per_bar * 60.0 / bpm
    if not (math.isfinite(bar) and bar > 0):
        raise ValueError(f"one bar of {beats_per_bar} beats at {bpm} bpm is not a usable length")
    return bar


def bar_aligned_seconds(seconds: float, bpm: float, beats_per_bar: int) -> float:
    """`seconds` rounded to a whole number of bars (at least one) at `bpm`."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"need a finite length > 0 (got {seconds})")
    bar = bar_seconds(bpm, beats_per_bar)
    return max(1, round(seconds / bar)) * bar


def gain_to(take: np.ndarray, target_lufs: float, sample_rate: int) -> float:
    """Linear gain that puts the take's integrated loudness at `target_lufs`; 1.0 when the
    take is silent or too short to measure (< 0.4 s)."""
    if take.shape[-1] < 0.4 * sample_rate:
        return 1.0
    lt = integrated_loudness(take, sample_rate)
    return float(10 ** ((target_lufs - lt) / 20)) if math.isfinite(lt) else 1.0


def loudness_gain(take: np.ndarray, context: np.ndarray | None, sample_rate: int,
                  offset_db: float = CONTEXT_OFFSET_DB) -> float:
    """Linear gain that puts the take `offset_db` below the context's integrated loudness.

    Returns 1.0 when either is silent or too short to measure (< 0.4 s).
    """
    if context is None or context.shape[-1] < 0.4 * sample_rate:
        return 1.0
    lc = integrated_loudness(context, sample_rate)
    return gain_to(take, lc + offset_db, sample_rate) if math.isfinite(lc) else 1.0


def set_loudness(take: np.ndarray, context: np.ndarray | None, sample_rate: int,
                 loudness: str | float = "context", peak: float = MAX_PEAK) -> np.ndarray:
    """The take at the loudness `generate` and `demo` write: "context" (the default, as the
    host hands takes to the DAW: `CONTEXT_OFFSET_DB` below the context's loudness; unchanged
    without a context), a number in LUFS, or "off" (as the model made it). A gain that would
    lift a sample above `peak` is lowered to reach it exactly."""
    if loudness == "off":
        return take
    gain = (loudness_gain(take, context, sample_rate) if loudness == "context"
            else gain_to(take, float(loudness), sample_rate))
    top = float(np.abs(take).max(initial=0.0))
    if top * gain > peak:
        gain = peak / top
    return (take * np.float32(gain)).astype(np.float32)


def render_take(take: np.ndarray, take_rate: int, out_rate: int, seconds: float,
                gain: float = 1.0, fade: float = FADE_SECONDS, tmp_dir: Path | None = None,
                fade_out: bool = True) -> np.ndarray:
    """Resample, loop or trim to `seconds`, apply gain and edge fades (the end's only with
    `fade_out`) with an offline pyo server.

    pyo renders through two files in a temporary folder made in `tmp_dir` (the host passes
    its session's tmp folder, which it sweeps on start; default: the system's)."""
    frames = int(round(seconds * out_rate))
    with tempfile.TemporaryDirectory(prefix="sideman-pyo-", dir=tmp_dir) as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(src, np.ascontiguousarray(take.T), take_rate, subtype="FLOAT")
        server = pyo.Server(sr=out_rate, nchnls=2, duplex=0, audio="offline")
        server.setVerbosity(1)  # errors only
        server.boot()
        try:
            server.recordOptions(dur=seconds, filename=str(dst), fileformat=0, sampletype=3)
            player = pyo.SfPlayer(str(src), loop=take.shape[1] / take_rate < seconds, interp=4)
            envelope = pyo.Fader(fadein=fade, fadeout=fade, dur=seconds if fade_out else 0, mul=gain).play()
            output = (player * envelope).out()
            server.start()  # offline: renders `seconds` and returns
            del output, envelope, player
        finally:
            server.shutdown()
        audio, _ = sf.read(dst, dtype="float32", always_2d=True)
    out = np.zeros((2, frames), np.float32)
    n = min(frames, audio.shape[0])
    out[:, :n] = audio[:n].T
    return out


def process_take(take: np.ndarray, take_rate: int, context: np.ndarray | None, out_rate: int,
                 seconds: float, bpm: float, beats_per_bar: int, tmp_dir: Path | None = None,
                 loop: bool = False) -> np.ndarray:
    """The whole chain: loudness-match to the context, then render bar-aligned at `out_rate`
    (a loop gets no edge fades: its end runs into its start)."""
    length = bar_aligned_seconds(seconds, bpm, beats_per_bar)
    gain = loudness_gain(take, context, take_rate)
    if not loop:
        return render_take(take, take_rate, out_rate, length, gain, tmp_dir=tmp_dir)
    # A loop: rendered from LOOP_LEAD seconds before its start (its own end, where a loop
    # comes from), then that lead with the render's fade-in is cut off.
    lead = int(round(LOOP_LEAD * take_rate))
    audio = render_take(np.concatenate([take[:, -lead:], take], axis=1), take_rate, out_rate,
                        length + lead / take_rate, gain, tmp_dir=tmp_dir, fade_out=False)
    return audio[:, int(round(lead / take_rate * out_rate)):][:, :int(round(length * out_rate))]
