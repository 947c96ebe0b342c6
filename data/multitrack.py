"""The multitrack data model shared by every dataset layout, and the checks on it.

A `Multitrack` is a list of songs, each a list of stems (audio files of equal length),
plus the problems found while reading it. `check_song` validates one song: unreadable
files, multichannel stems, mismatched lengths or sample rates, mono and silent stems each
get a message naming the file, and unusable stems or songs are left out.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sideman.data.files import atomic_writer
from sideman.data.audio import SAMPLE_RATE, AudioFileError, AudioInfo, audio_info, block_rms, check_channels

BLOCK = 4096  # activity resolution in samples at 48 kHz: one latent frame of the autoencoder
SILENT_STEM_DB = -60.0  # a stem whose loudest block is below this is silent
LENGTH_TOLERANCE = 0.1  # seconds two stems of one song may differ by (the shorter wins)


@dataclass
class Problem:
    """Something wrong with an input file: `severity` is 'error' (left out) or 'warning'."""

    path: Path
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class Stem:
    """One stem file of a song, with its role, tags and (after checking) level per block."""

    name: str
    path: Path
    role: str
    tags: tuple[str, ...]
    is_vocal: bool = False
    info: AudioInfo | None = None
    activity: np.ndarray | None = field(default=None, repr=False)  # mean square per BLOCK

    @property
    def caption(self) -> str:
        return ", ".join(self.tags)


@dataclass
class Song:
    song_id: str
    layout: str
    path: Path
    stems: list[Stem]
    split: str | None = None  # the split the layout itself names (MUSDB, Slakh), if any
    frames: int = 0  # usable length at 48 kHz (the shortest stem), set by check_song

    @property
    def seconds(self) -> float:
        return self.frames / SAMPLE_RATE


@dataclass
class Multitrack:
    """A read data set: usable songs and every problem met on the way."""

    root: Path
    layout: str
    songs: list[Song]
    problems: list[Problem] = field(default_factory=list)

    def report(self) -> str:
        stems = sum(len(s.stems) for s in self.songs)
        hours = sum(s.seconds for s in self.songs) / 3600
        lines = [f"{self.root}: layout '{self.layout}', {len(self.songs)} usable songs, "
                 f"{stems} stems, {hours:.2f} h"]
        lines += [str(p) for p in self.problems]
        return "\n".join(lines)


def default_cache_dir() -> Path:
    return Path(os.environ.get("SIDEMAN_CACHE", Path.home() / ".cache" / "sideman"))


class ActivityCache:
    """Per-file block levels on disk, keyed by path, size and modification time."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory or default_cache_dir()) / "activity"

    def _key(self, path: Path) -> Path:
        st = path.stat()
        raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{BLOCK}|{SAMPLE_RATE}"
        return self.directory / (hashlib.sha1(raw.encode()).hexdigest() + ".npy")

    def levels(self, path: Path) -> np.ndarray:
        file = self._key(path)
        if file.is_file():
            try:
                return np.load(file)
            except (OSError, ValueError):
                pass
        levels = block_rms(path, BLOCK, SAMPLE_RATE)
        with atomic_writer(file, durable=False) as f:
            np.save(f, levels)
        return levels


def check_song(song: Song, cache: ActivityCache | None = None) -> tuple[Song | None, list[Problem]]:
    """Validate a song; returns the usable song (or None) and the problems found."""
    problems: list[Problem] = []
    stems: list[Stem] = []
    for stem in song.stems:
        try:
            info = audio_info(stem.path)
            check_channels(info)
        except AudioFileError as exc:
            problems.append(Problem(stem.path, str(exc).split(": ", 1)[-1] + "; stem left out"))
            continue
        if info.channels == 1:
            problems.append(Problem(stem.path, "mono stem; used as dual-mono stereo", "warning"))
        stems.append(replace(stem, info=info))
    rates = {s.info.sample_rate for s in stems}
    if len(rates) > 1:
        listing = ", ".join(f"{s.path.name} {s.info.sample_rate} Hz" for s in stems)
        problems.append(Problem(song.path, f"stems have different sample rates ({listing}); "
                                           f"each is resampled to {SAMPLE_RATE} Hz", "warning"))
    if stems:
        seconds = [s.info.seconds for s in stems]
        if max(seconds) - min(seconds) > LENGTH_TOLERANCE:
            listing = ", ".join(f"{s.path.name} {s.info.seconds:.2f} s" for s in stems)
            problems.append(Problem(song.path, f"stems have different lengths ({listing}); "
                                               f"song left out"))
            return None, problems
    cache = cache or ActivityCache()
    usable = []
    for stem in stems:
        try:
            levels = cache.levels(stem.path)
        except AudioFileError as exc:
            problems.append(Problem(stem.path, str(exc).split(": ", 1)[-1] + "; stem left out"))
            continue
        peak_db = 10 * np.log10(max(float(levels.max(initial=0.0)), 1e-20))
        if peak_db < SILENT_STEM_DB:
            problems.append(Problem(stem.path, f"silent stem (loudest block {peak_db:.1f} dBFS); "
                                               f"left out", "warning"))
            continue
        usable.append(replace(stem, activity=levels))
    if len(usable) < 2:
        problems.append(Problem(song.path, f"needs at least two usable stems (a target and a "
                                           f"context), has {len(usable)}; song left out"))
        return None, problems
    frames = min(int(round(s.info.frames * SAMPLE_RATE / s.info.sample_rate)) for s in usable)
    return replace(song, stems=usable, frames=frames), problems
