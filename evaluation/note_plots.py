"""Pictures of notes: a context's and a stem's basic-pitch transcriptions drawn as piano-roll
bars over their log-frequency spectrograms, so that a reader sees at a glance whether a
generated part plays notes, in which register, and whether they line up with the song's."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 48_000
LOW_MIDI, HIGH_MIDI = 24, 100  # C1 .. E7


@dataclass(frozen=True)
class Panel:
    """One picture: a title, audio (C, S) at 48 kHz and its notes (K, 4)."""

    title: str
    audio: np.ndarray
    notes: np.ndarray


def log_spectrogram(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, n_fft: int = 8192, hop: int = 1024):
    """(times (T,), MIDI pitch of each kept bin (F,), dB (F, T)) of the mono downmix,
    keeping the bins between LOW_MIDI and HIGH_MIDI."""
    x = np.asarray(audio, np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    frames = 1 + max(0, len(x) - n_fft) // hop
    window = np.hanning(n_fft)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(np.pad(x, (0, max(0, n_fft - len(x))))[idx] * window, axis=1)).T
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    with np.errstate(divide="ignore"):
        midi = 69 + 12 * np.log2(freqs / 440.0)
    keep = (midi >= LOW_MIDI) & (midi <= HIGH_MIDI)
    db = 20 * np.log10(spec[keep] + 1e-7)
    return (np.arange(frames) * hop + n_fft / 2) / sample_rate, midi[keep], db


def _panel(ax, audio: np.ndarray, notes: np.ndarray, title: str, colour: str) -> None:
    times, midi, db = log_spectrogram(audio)
    top = db.max() if db.size else 0.0
    ax.pcolormesh(times, midi, db, vmin=top - 70, vmax=top, cmap="magma", shading="nearest", rasterized=True)
    for start, end, pitch, _ in notes:
        ax.plot([start, end], [pitch, pitch], color=colour, lw=2.2, solid_capstyle="butt")
    ax.set_ylim(LOW_MIDI, HIGH_MIDI)
    ax.set_xlim(0, audio.shape[-1] / SAMPLE_RATE)
    ax.set_yticks([36, 48, 60, 72, 84, 96], ["C2", "C3", "C4", "C5", "C6", "C7"])
    ax.set_title(title, fontsize=9)


COLOURS = ("cyan", "lime", "lime", "lime")  # the context, then every stem


def plot_examples(examples: list[list[Panel]], path: Path, heading: str) -> Path:
    """A PNG with one row per example and one column per panel (e.g. context, generated
    stem, real stem), each panel's notes (one colour per column) over its spectrogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError("no examples to plot")
    columns = max(len(ex) for ex in examples)
    fig, axes = plt.subplots(len(examples), columns, figsize=(5.5 * columns, 2.6 * len(examples) + 0.6),
                             squeeze=False)
    for row, ex in zip(axes, examples):
        for j, (ax, panel) in enumerate(zip(row, ex)):
            _panel(ax, panel.audio, panel.notes, f"{panel.title} ({len(panel.notes)} notes)", COLOURS[j % 4])
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    fig.suptitle(heading, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
