"""Readers for the multitrack layouts users bring, all producing a `Multitrack`.

- corpus:  our synthetic corpus (`corpus.json`, `<song>/metadata.json`, `<song>/stems/*.flac`)
- musdb:   MUSDB18-HQ (`<split>/<song>/{bass,drums,other,vocals}.wav`; mixture.wav ignored)
- slakh:   Slakh2100 (`[<split>/]TrackNNNNN/metadata.yaml` + `stems/SNN.flac`)
- folder:  a plain folder of songs, `<song>/<stem>.{wav,flac,...}`, with an optional
           `tags.json` ({"bass.wav": ["warm", "upright bass"]}) or `tags.txt`
           (`bass.wav: warm, upright bass` per line) in each song folder

`read_multitrack(path, layout="auto")` detects the layout, reads and checks every song.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import yaml
from tqdm import tqdm

from sideman.data.audio import AUDIO_EXTENSIONS
from sideman.data.multitrack import ActivityCache, Multitrack, Problem, Song, Stem, check_song

MUSDB_STEMS = ("bass", "drums", "other", "vocals")
MUSDB_TAGS = {"bass": ("bass",), "drums": ("drums", "drum kit"),
              "other": ("other instruments", "accompaniment"), "vocals": ("vocals", "singing")}
MIX_NAMES = {"mix", "mixture", "master", "full", "song"}
VOCAL_WORDS = re.compile(r"vocal|vox|voice|sing|choir|lyric|rap\b|acapella", re.I)
ROLE_WORDS = (("drums", r"drum|kick|snare|hat|perc|cymbal|tom\b"), ("bass", r"bass"),
              ("guitar", r"guit|gtr"), ("keys", r"piano|key|rhodes|organ|synth|clav"),
              ("pads", r"pad|string|strg|ensemble"), ("vocals", VOCAL_WORDS.pattern),
              ("lead", r"lead|melody|sax|trumpet|flute|violin|horn|brass"))


class LayoutError(ValueError):
    """The folder does not hold a readable multitrack layout."""


def _infer_role(name: str) -> str:
    for role, pattern in ROLE_WORDS:
        if re.search(pattern, name, re.I):
            return role
    return "other"


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


# ------------------------------------------------------------------------- corpus

def _is_corpus(root: Path) -> bool:
    return (root / "corpus.json").is_file()


def _corpus_songs(root: Path, problems: list[Problem]) -> list[Song]:
    songs = []
    for meta_file in sorted(root.glob("*/metadata.json")):
        try:
            meta = json.loads(meta_file.read_text())
            stems = [Stem(role, meta_file.parent / s["file"], s["role"], tuple(s["tags"]))
                     for role, s in meta["stems"].items()]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(meta_file, f"unreadable song metadata ({exc}); song left out"))
            continue
        songs.append(Song(meta["song_id"], "corpus", meta_file.parent, stems))
    return songs


# -------------------------------------------------------------------------- musdb

def _musdb_song_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/vocals.wav") if (p.parent / "bass.wav").is_file())


def _is_musdb(root: Path) -> bool:
    return bool(_musdb_song_dirs(root))


def _musdb_songs(root: Path, problems: list[Problem]) -> list[Song]:
    songs = []
    for folder in _musdb_song_dirs(root):
        stems = []
        for name in MUSDB_STEMS:
            path = folder / f"{name}.wav"
            if not path.is_file():
                problems.append(Problem(path, "MUSDB18-HQ stem missing; song left out"))
                break
            stems.append(Stem(name, path, name, MUSDB_TAGS[name], is_vocal=name == "vocals"))
        else:
            songs.append(Song(f"{folder.parent.name}/{folder.name}", "musdb", folder, stems,
                              split=folder.parent.name))
    return songs


# -------------------------------------------------------------------------- slakh

def _slakh_track_dirs(root: Path) -> list[Path]:
    found = list(root.glob("Track*/metadata.yaml")) + list(root.glob("*/Track*/metadata.yaml"))
    return sorted(p.parent for p in found)


def _is_slakh(root: Path) -> bool:
    return bool(_slakh_track_dirs(root))


def _slakh_songs(root: Path, problems: list[Problem]) -> list[Song]:
    songs = []
    for folder in _slakh_track_dirs(root):
        split = folder.parent.name if folder.parent != root else None
        if split == "omitted":
            continue
        try:
            meta = yaml.safe_load((folder / "metadata.yaml").read_text())
            entries = meta["stems"].items()
        except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            problems.append(Problem(folder / "metadata.yaml", f"unreadable Slakh metadata ({exc}); "
                                                              f"song left out"))
            continue
        stems = []
        for sid, s in entries:
            path = folder / "stems" / f"{sid}.flac"
            if not s.get("audio_rendered", True) or not path.is_file():
                continue
            program = str(s.get("midi_program_name", "")).lower()
            family = "drums" if s.get("is_drum") else str(s.get("inst_class", "other")).lower()
            tags = tuple(t for t in dict.fromkeys((program, family)) if t)
            stems.append(Stem(sid, path, family, tags,
                              is_vocal=bool(VOCAL_WORDS.search(program))))
        songs.append(Song(folder.name, "slakh", folder, stems, split=split))
    return songs


# ------------------------------------------------------------------------- folder

def _folder_tags(folder: Path, problems: list[Problem]) -> dict[str, list[str]]:
    """Tags per stem file name (and per name without extension) from tags.json or tags.txt."""
    tags: dict[str, list[str]] = {}
    json_file, txt_file = folder / "tags.json", folder / "tags.txt"
    try:
        if json_file.is_file():
            raw = json.loads(json_file.read_text())
            if not isinstance(raw, dict):
                raise ValueError("expected an object mapping stem file names to tag lists")
            for key, value in raw.items():
                tags[key] = [value] if isinstance(value, str) else [str(v) for v in value]
        elif txt_file.is_file():
            for line in txt_file.read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, sep, value = line.partition(":")
                    if not sep:
                        raise ValueError(f"line without 'stem: tags': {line!r}")
                    tags[key.strip()] = [t.strip() for t in value.split(",") if t.strip()]
    except (ValueError, OSError) as exc:
        problems.append(Problem(json_file if json_file.is_file() else txt_file,
                                f"unreadable tags file ({exc}); default tags used", "warning"))
        return {}
    return {**{Path(k).stem: v for k, v in tags.items()}, **tags}


def _folder_songs(root: Path, problems: list[Problem]) -> list[Song]:
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and _audio_files(p)]
    if not folders and _audio_files(root):
        folders = [root]  # the folder itself is one song
    songs = []
    for folder in folders:
        tags = _folder_tags(folder, problems)
        stems = []
        for path in _audio_files(folder):
            if path.stem.lower() in MIX_NAMES:
                continue
            words = tags.get(path.name) or tags.get(path.stem) or [path.stem.replace("_", " ")]
            stems.append(Stem(path.stem, path, _infer_role(path.stem), tuple(words),
                              is_vocal=bool(VOCAL_WORDS.search(path.stem + " " + " ".join(words)))))
        songs.append(Song(folder.name, "folder", folder, stems))
    return songs


READERS: dict[str, tuple[Callable[[Path], bool], Callable[[Path, list[Problem]], list[Song]]]] = {
    "corpus": (_is_corpus, _corpus_songs),
    "musdb": (_is_musdb, _musdb_songs),
    "slakh": (_is_slakh, _slakh_songs),
    "folder": (lambda root: True, _folder_songs),
}


def detect_layout(root: Path) -> str:
    """The first layout whose signature files are present; 'folder' otherwise."""
    return next(name for name, (is_layout, _) in READERS.items() if is_layout(root))


def read_multitrack(root: str | Path, layout: str = "auto", cache: ActivityCache | None = None,
                    progress: bool = False) -> Multitrack:
    """Read and check every song of a data set; unusable songs are left out with a problem."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in READERS:
        raise LayoutError(f"unknown layout '{layout}' (choose from auto, {', '.join(READERS)})")
    problems: list[Problem] = []
    candidates = READERS[layout][1](root, problems)
    if not candidates:
        raise LayoutError(f"{root}: no songs found for layout '{layout}'")
    songs = []
    for song in tqdm(candidates, desc="checking songs", unit="song", disable=not progress):
        checked, found = check_song(song, cache)
        problems += found
        if checked is not None:
            songs.append(checked)
    return Multitrack(root, layout, songs, problems)


def warm_activity_cache(root: str | Path, part: tuple[int, int] = (0, 1), layout: str = "auto") -> int:
    """Compute the block levels of the songs whose index is part[0] modulo part[1] into the
    activity cache, so that n processes share the first read of a large data set (each
    would otherwise decode every stem); returns the songs visited."""
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in READERS:
        raise LayoutError(f"unknown layout '{layout}' (choose from auto, {', '.join(READERS)})")
    candidates = READERS[layout][1](root, [])[part[0]::part[1]]
    cache = ActivityCache()
    for song in candidates:
        check_song(song, cache)
    return len(candidates)
