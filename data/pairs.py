"""Training pairs as in Diff-A-Riff and the improved paper (section 4.1 and 4.3).

A pair is (target stem window, context window, CLAP segment, caption):
- the target is any non-vocal stem of a song;
- the context is the mix of a random non-empty subset of the song's OTHER stems;
- target and context are the same aligned window (10 s by default), whose start is a
  multiple of the autoencoder hop (4096 samples) so latents line up;
- windows where the target is near-silent are skipped (window level below `silence_db`, or
  fewer than `min_active` of its 85-ms blocks above it);
- the CLAP segment is a different random window of the same target stem that never
  overlaps the target window (the leakage the improved paper fixes);
- the caption is the target stem's tag list.
Sampling is a pure function of (seed, epoch, index), so it is the same with any number of
DataLoader workers. Songs are split into train/validation by a hash of their id.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sideman.data.audio import SAMPLE_RATE, load_audio
from sideman.data.multitrack import BLOCK, Multitrack, Song, Stem


@dataclass(frozen=True)
class PairConfig:
    """Window lengths in seconds; thresholds in dBFS; `validation_fraction` of songs held out."""

    seconds: float = 10.0
    clap_seconds: float = 10.0
    silence_db: float = -45.0
    min_active: float = 0.25
    validation_fraction: float = 0.1
    seed: int = 0

    @property
    def window_blocks(self) -> int:
        return int(round(self.seconds * SAMPLE_RATE / BLOCK))

    @property
    def clap_blocks(self) -> int:
        return int(round(self.clap_seconds * SAMPLE_RATE / BLOCK))


@dataclass
class TrainingPair:
    """One example. Audio is float32 (2, samples) at 48 kHz; starts are in samples."""

    target: np.ndarray
    context: np.ndarray
    clap_audio: np.ndarray
    caption: str
    tags: tuple[str, ...]
    song_id: str
    target_stem: str
    context_stems: tuple[str, ...]
    target_start: int
    clap_start: int

    def describe(self) -> dict:
        skip = {"target", "context", "clap_audio"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def song_split(song_id: str, validation_fraction: float) -> str:
    """'validation' or 'train' from a stable hash of the song id (independent of the data set)."""
    h = int.from_bytes(hashlib.sha1(song_id.encode()).digest()[:8], "big") / 2 ** 64
    return "validation" if h < validation_fraction else "train"


def _moving_mean(x: np.ndarray, blocks: int) -> np.ndarray:
    csum = np.concatenate([[0.0], np.cumsum(x)])
    return (csum[blocks:] - csum[:-blocks]) / blocks


def sounding_starts(activity: np.ndarray, blocks: int, silence_db: float,
                    min_active: float) -> np.ndarray:
    """Start blocks of the windows of `blocks` blocks that are not near-silent.

    activity: (n,) mean square per block. A window sounds when its level is above
    `silence_db` and at least `min_active` of its blocks are too.
    """
    if len(activity) < blocks:
        return np.zeros(0, dtype=np.int64)
    level_db = 10 * np.log10(np.maximum(_moving_mean(activity, blocks), 1e-20))
    active = _moving_mean((activity > 10 ** (silence_db / 10)).astype(np.float64), blocks)
    return np.flatnonzero((level_db > silence_db) & (active >= min_active - 1e-9))


@dataclass
class _Target:
    """A stem that can be a target, with its usable window starts (in blocks)."""

    song: Song
    stem: Stem
    starts: np.ndarray
    clap_starts: np.ndarray


class PairSampler:
    """Draws training pairs from the songs of one split of a checked `Multitrack`."""

    def __init__(self, data: Multitrack, config: PairConfig = PairConfig(), split: str = "train"):
        if split not in ("train", "validation", "all"):
            raise ValueError(f"split must be 'train', 'validation' or 'all', not '{split}'")
        self.config = config
        self.split = split
        self.songs = [s for s in data.songs
                      if split == "all" or song_split(s.song_id, config.validation_fraction) == split]
        self.targets = [t for song in self.songs for t in self._targets(song)]
        if not self.targets:
            raise ValueError(f"no usable training pairs in split '{split}' of {data.root}: every "
                             f"song is shorter than {config.seconds + config.clap_seconds:.0f} s of "
                             f"sound, silent, or has only vocals as candidate targets")
        self._by_song: dict[str, list[_Target]] = {}
        for t in self.targets:
            self._by_song.setdefault(t.song.song_id, []).append(t)
        self.song_ids = sorted(self._by_song)

    def _targets(self, song: Song) -> list[_Target]:
        cfg = self.config
        n_blocks = song.frames // BLOCK
        out = []
        for stem in song.stems:
            if stem.is_vocal:
                continue
            activity = stem.activity[:n_blocks]
            starts = sounding_starts(activity, cfg.window_blocks, cfg.silence_db, cfg.min_active)
            clap = sounding_starts(activity, cfg.clap_blocks, cfg.silence_db, cfg.min_active)
            usable = [s for s in starts if len(self._clap_choices(s, clap))]
            if usable:
                out.append(_Target(song, stem, np.array(usable), clap))
        return out

    def _clap_choices(self, start: int, clap_starts: np.ndarray) -> np.ndarray:
        """CLAP window starts that do not overlap [start, start + window)."""
        cfg = self.config
        ok = (clap_starts + cfg.clap_blocks <= start) | (clap_starts >= start + cfg.window_blocks)
        return clap_starts[ok]

    def sample(self, index: int, epoch: int = 0) -> TrainingPair:
        """The pair for (epoch, index): song round-robin by index, everything else random."""
        cfg = self.config
        rng = np.random.default_rng((cfg.seed, epoch, index))
        song_targets = self._by_song[self.song_ids[index % len(self.song_ids)]]
        target = song_targets[int(rng.integers(len(song_targets)))]
        song = target.song
        others = [s for s in song.stems if s.path != target.stem.path]
        size = int(rng.integers(1, len(others) + 1))
        chosen = sorted(rng.choice(len(others), size=size, replace=False))
        context_stems = [others[i] for i in chosen]
        start = int(target.starts[int(rng.integers(len(target.starts)))])
        clap_options = self._clap_choices(start, target.clap_starts)
        clap_start = int(clap_options[int(rng.integers(len(clap_options)))])
        n, n_clap = cfg.window_blocks * BLOCK, cfg.clap_blocks * BLOCK
        target_audio = load_audio(target.stem.path, start * BLOCK, n)
        context = np.zeros_like(target_audio)
        for stem in context_stems:
            context += load_audio(stem.path, start * BLOCK, n)
        return TrainingPair(
            target=target_audio, context=context,
            clap_audio=load_audio(target.stem.path, clap_start * BLOCK, n_clap),
            caption=target.stem.caption, tags=target.stem.tags, song_id=song.song_id,
            target_stem=target.stem.name, context_stems=tuple(s.name for s in context_stems),
            target_start=start * BLOCK, clap_start=clap_start * BLOCK)


def write_pairs(sampler: PairSampler, count: int, out: Path, epoch: int = 0) -> list[Path]:
    """Write `count` pairs as folders of WAV files (target, context, clap, mix) + pair.json."""
    out = Path(out)
    folders = []
    for i in range(count):
        pair = sampler.sample(i, epoch)
        folder = out / f"pair_{i:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, audio in (("target", pair.target), ("context", pair.context),
                            ("clap", pair.clap_audio), ("mix", pair.target + pair.context)):
            sf.write(folder / f"{name}.wav", audio.T, SAMPLE_RATE, subtype="FLOAT")
        (folder / "pair.json").write_text(json.dumps(pair.describe(), indent=2))
        folders.append(folder)
    return folders
