"""Rendering MIDI to audio with the FluidSynth command-line synthesiser.

FluidSynth renders faster than real time to a float WAV file (`-F`), deterministically for
a given soundfont. Debian ships the General MIDI soundfonts used here:
fluid-soundfont-gm (FluidR3_GM.sf2, 141 MB) and timgm6mb-soundfont (TimGM6mb.sf2, 6 MB).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)


class RenderError(RuntimeError):
    """FluidSynth is missing or failed on a file."""


def find_fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError("the 'fluidsynth' program is not installed "
                          "(Debian/Ubuntu: sudo apt-get install fluidsynth fluid-soundfont-gm)")
    return exe


def find_soundfont(preferred: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: `preferred`, $SIDEMAN_SOUNDFONT, or the first Debian GM soundfont found."""
    if preferred:
        if not Path(preferred).is_file():
            raise RenderError(f"soundfont not found: {preferred}")
        return Path(preferred)
    for candidate in (os.environ.get("SIDEMAN_SOUNDFONT"), *SOUNDFONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise RenderError("no General MIDI soundfont found (Debian/Ubuntu: sudo apt-get install "
                      "fluid-soundfont-gm, or timgm6mb-soundfont for a small one; or pass --soundfont)")


def render_midi(midi_path: Path, soundfont: Path, sample_rate: int = 48000,
                gain: float = 0.5) -> np.ndarray:
    """Render a MIDI file; returns float32 audio of shape (2, samples) at `sample_rate`."""
    exe = find_fluidsynth()
    with tempfile.TemporaryDirectory(prefix="sideman-fs-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [exe, "-ni", "-q", "-F", str(wav), "-T", "wav", "-O", "float",
               "-r", str(sample_rate), "-g", str(gain), "-o", "synth.cpu-cores=1",
               str(soundfont), str(midi_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not wav.is_file():
            raise RenderError(f"fluidsynth failed on {midi_path} (exit {proc.returncode}): "
                              f"{proc.stderr.strip()[-500:]}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate or audio.shape[1] != 2:
        raise RenderError(f"fluidsynth wrote {audio.shape[1]} channels at {sr} Hz for {midi_path}")
    return np.ascontiguousarray(audio.T)
