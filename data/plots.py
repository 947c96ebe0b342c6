"""Pictures for people: spectrograms of a training pair, and of a generated stem in its song."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sideman.data.audio import SAMPLE_RATE  # noqa: E402
from sideman.data.pairs import TrainingPair  # noqa: E402


def log_spectrogram(audio: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """dB magnitude spectrogram (freq, frames) of the mono downmix of (2, N) audio."""
    mono = audio.mean(axis=0)
    if len(mono) < n_fft:
        mono = np.pad(mono, (0, n_fft - len(mono)))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)).T
    return 20 * np.log10(np.maximum(mag, 1e-5))


def plot_pair(pair: TrainingPair, path: Path) -> Path:
    """PNG of context, target and CLAP-segment spectrograms with the caption as title."""
    panels = (("context (mix of " + ", ".join(pair.context_stems) + ")", pair.context),
              (f"target: {pair.target_stem}", pair.target),
              (f"CLAP segment of {pair.target_stem} (from {pair.clap_start / SAMPLE_RATE:.1f} s)",
               pair.clap_audio))
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), constrained_layout=True)
    for ax, (title, audio) in zip(axes, panels):
        spec = log_spectrogram(audio)
        seconds = audio.shape[1] / SAMPLE_RATE
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 80,
                  extent=(0, seconds, 0, SAMPLE_RATE / 2000))
        ax.set_ylim(0, 12)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(f"{pair.song_id}: \"{pair.caption}\"", fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_spectrograms(panels: list[tuple[str, np.ndarray]], path: Path, title: str = "",
                      max_khz: float = 12.0) -> Path:
    """PNG with one spectrogram row per ``(title, (2, N) audio at 48 kHz)`` panel, on a
    shared time axis and colour scale (dB relative to the loudest panel)."""
    specs = [log_spectrogram(audio) for _, audio in panels]
    top = max(float(s.max()) for s in specs)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), constrained_layout=True,
                             squeeze=False)
    for ax, (name, audio), spec in zip(axes[:, 0], panels, specs):
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0, audio.shape[1] / SAMPLE_RATE, 0, SAMPLE_RATE / 2000))
        ax.set_ylim(0, max_khz)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
