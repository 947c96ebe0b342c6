"""Helpers that write small audio fixtures in the layouts the readers understand."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(freq: float, seconds: float, sr: int = 48000, channels: int = 2, amp: float = 0.3,
         silent_from: float | None = None, silent_to: float | None = None) -> np.ndarray:
    """(frames, channels) sine, optionally silent between two times (seconds)."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    if silent_from is not None:
        x[int(silent_from * sr):int((silent_to or seconds) * sr)] = 0.0
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int = 48000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr)
    return path
