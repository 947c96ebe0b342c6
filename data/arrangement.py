"""Procedural songs: tempo, key, meter, sections with chord progressions, one part per role.

`generate_song(seed, seconds)` is deterministic for its seed. A genre preset biases the
choice of playing styles and instruments so that the parts of one song fit together,
with some chance of an instrument from outside the preset for variety.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sideman.data.instruments import ROLE_TABLE, ROLES, Program
from sideman.data.melody import LEAD_STYLES
from sideman.data.patterns import STYLES, Bar, Note
from sideman.data.theory import NOTE_NAMES, PROGRESSIONS, Key, diatonic_chord

ALL_STYLES = {**STYLES, "lead": LEAD_STYLES}


@dataclass(frozen=True)
class Genre:
    """Tempo range, chance of 3/4, and preferred styles and programs per role."""

    name: str
    tempo: tuple[int, int]
    waltz_prob: float
    styles: dict[str, tuple[str, ...]]
    programs: dict[str, tuple[int, ...]]
    moods: tuple[str, ...]


GENRES = (
    Genre("rock", (100, 150), 0.1,
          {"drums": ("backbeat", "half_time"), "bass": ("eighth_pulse", "root_fifth"),
           "keys": ("block_chords", "ballad"), "guitar": ("power_chords", "strummed"),
           "pads": ("sustained", "half_bar"), "lead": ("legato", "staccato")},
          {"drums": (0, 8, 16), "bass": (33, 34), "keys": (0, 16, 17), "guitar": (27, 29, 30),
           "pads": (48, 90), "lead": (81, 80, 40)}, ("energetic", "raw")),
    Genre("jazz", (90, 180), 0.35,
          {"drums": ("swing_ride",), "bass": ("walking",), "keys": ("comping", "block_chords"),
           "guitar": ("fingerpicked", "strummed"), "pads": ("sustained", "high_drone"),
           "lead": ("legato", "runs")},
          {"drums": (32, 40), "bass": (32, 35), "keys": (0, 4, 11), "guitar": (26, 24),
           "pads": (49, 89), "lead": (65, 66, 56, 71)}, ("smooth", "sophisticated")),
    Genre("dance", (118, 130), 0.0,
          {"drums": ("four_on_floor",), "bass": ("octaves", "eighth_pulse"),
           "keys": ("arpeggio", "comping"), "guitar": ("offbeat_skank", "strummed"),
           "pads": ("pulsing", "sustained"), "lead": ("staccato", "legato")},
          {"drums": (24, 25), "bass": (38, 39), "keys": (5, 1), "guitar": (27, 28),
           "pads": (90, 94, 50), "lead": (80, 81)}, ("danceable", "upbeat")),
    Genre("funk", (90, 115), 0.0,
          {"drums": ("breakbeat", "backbeat"), "bass": ("syncopated",),
           "keys": ("comping",), "guitar": ("offbeat_skank", "strummed"),
           "pads": ("pulsing", "half_bar"), "lead": ("staccato", "runs")},
          {"drums": (0, 8), "bass": (36, 33), "keys": (7, 4), "guitar": (28, 27),
           "pads": (50, 90), "lead": (65, 56)}, ("groovy", "funky")),
    Genre("folk", (80, 125), 0.45,
          {"drums": ("backbeat", "waltz"), "bass": ("root_fifth", "whole_notes"),
           "keys": ("broken_chord", "block_chords"), "guitar": ("fingerpicked", "strummed"),
           "pads": ("sustained", "pulsing"), "lead": ("legato", "long_tones")},
          {"drums": (8, 40), "bass": (32, 33), "keys": (0, 6), "guitar": (24, 25),
           "pads": (48, 45), "lead": (73, 40, 22, 71)}, ("earthy", "organic")),
    Genre("ballad", (60, 85), 0.4,
          {"drums": ("half_time", "waltz"), "bass": ("whole_notes", "root_fifth"),
           "keys": ("ballad", "arpeggio"), "guitar": ("fingerpicked",),
           "pads": ("sustained", "high_drone"), "lead": ("long_tones", "legato")},
          {"drums": (40, 0), "bass": (35, 33), "keys": (0, 4), "guitar": (24, 27),
           "pads": (49, 89, 92), "lead": (73, 68, 40, 71)}, ("emotional", "intimate")),
    Genre("reggae", (70, 95), 0.0,
          {"drums": ("half_time",), "bass": ("syncopated", "whole_notes"),
           "keys": ("comping",), "guitar": ("offbeat_skank",),
           "pads": ("pulsing", "sustained"), "lead": ("legato", "staccato")},
          {"drums": (0, 8), "bass": (33, 38), "keys": (16, 17), "guitar": (27, 28),
           "pads": (50, 89), "lead": (22, 56, 65)}, ("relaxed", "laid-back")),
)

# Section types: energy, and the chance that each non-essential role rests.
SECTION_ENERGY = {"intro": 0.3, "verse": 0.55, "chorus": 0.9, "bridge": 0.65, "outro": 0.4}
FORM = ("verse", "chorus", "verse", "chorus", "bridge", "chorus")


@dataclass
class Part:
    """One role's part for the whole song, rendered to one stem."""

    role: str
    program: Program
    style: str
    style_tags: tuple[str, ...]
    notes: list[Note]
    pan: float  # -1..1
    volume: int  # CC7
    reverb: int  # CC91


@dataclass
class Section:
    name: str
    start_bar: int
    bars: int
    degrees: tuple[int, ...]  # chord root degree per bar
    energy: float
    roles: tuple[str, ...]  # roles that play in this section


@dataclass
class Song:
    """A complete procedural song. Times in beats; `seconds` is the rendered length."""

    song_id: str
    seed: tuple[int, ...]
    genre: str
    tempo: float  # beats (quarter notes) per minute
    key: Key
    beats_per_bar: int
    seconds: float
    sections: list[Section]
    parts: dict[str, Part] = field(default_factory=dict)
    moods: tuple[str, ...] = ()

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo

    @property
    def total_bars(self) -> int:
        return sum(s.bars for s in self.sections)


def _plan_sections(n_bars: int, progressions: dict[str, tuple[int, ...]],
                   rng: np.random.Generator) -> list[Section]:
    """Intro (for songs of 12+ bars), then the form cycled until n_bars are covered."""
    names = (["intro"] if n_bars >= 12 else []) + list(FORM)
    sections: list[Section] = []
    bar = 0
    i = 0
    while bar < n_bars:
        name = names[i % len(names)] if i < len(names) else FORM[i % len(FORM)]
        length = 2 if name == "intro" else 4
        prog = progressions[name]
        degrees = tuple(prog[j % len(prog)] for j in range(length))
        sections.append(Section(name, bar, length, degrees, SECTION_ENERGY[name], ()))
        bar += length
        i += 1
    return sections


def _assign_roles(sections: list[Section], rng: np.random.Generator) -> None:
    """Choose who plays in each section; every role plays somewhere, >= 3 roles per section."""
    for s in sections:
        if s.name == "intro":
            roles = [r for r in ROLES if r in ("keys", "pads", "guitar", "drums") and rng.random() < 0.6]
        else:
            rest = {"chorus": 0.05, "verse": 0.2, "bridge": 0.35, "outro": 0.4}[s.name]
            roles = [r for r in ROLES if rng.random() >= (0.5 if r == "lead" and s.name == "verse" else rest)]
        while len(roles) < 3:
            missing = [r for r in ROLES if r not in roles]
            roles.append(missing[int(rng.integers(len(missing)))])
        s.roles = tuple(r for r in ROLES if r in roles)
    if {r for s in sections for r in s.roles} != set(ROLES):
        longest = max(sections, key=lambda s: (s.bars, s.energy))
        longest.roles = tuple(ROLES)


def _choose(options, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def _pick_part(role: str, genre: Genre, rng: np.random.Generator) -> tuple[Program, str]:
    """A program and style for a role: the genre's preference, or (25%) anything."""
    table = ROLE_TABLE[role]
    if rng.random() < 0.75:
        program_num = _choose(genre.programs[role], rng)
        program = next(p for p in table.programs if p.program == program_num)
        style = _choose(genre.styles[role], rng)
    else:
        program = _choose(table.programs, rng)
        style = _choose(tuple(ALL_STYLES[role]), rng)
    return program, style


def generate_song(seed: int | tuple[int, ...], seconds: float, song_id: str = "song") -> Song:
    """Compose a song long enough to fill `seconds`, deterministically for `seed`."""
    seed_t = tuple(seed) if isinstance(seed, (tuple, list)) else (int(seed),)
    rng = np.random.default_rng(np.random.SeedSequence(seed_t))
    genre = _choose(GENRES, rng)
    tempo = float(rng.integers(genre.tempo[0], genre.tempo[1] + 1))
    beats = 3 if rng.random() < genre.waltz_prob else 4
    mode = "minor" if rng.random() < 0.45 else "major"
    key = Key(int(rng.integers(12)), mode)
    n_bars = math.ceil(seconds * tempo / 60.0 / beats) + 1  # one spare bar for the release tail
    progressions = {name: _choose(PROGRESSIONS[mode], rng) for name in SECTION_ENERGY}
    sections = _plan_sections(n_bars, progressions, rng)
    _assign_roles(sections, rng)
    moods = _mood_words(genre, key, tempo, rng)
    song = Song(song_id, seed_t, genre.name, tempo, key, beats, float(seconds), sections, moods=moods)
    for role in ROLES:
        program, style = _pick_part(role, genre, rng)
        pattern, style_tags = ALL_STYLES[role][style]
        table = ROLE_TABLE[role]
        notes = []
        for s in sections:
            if role in s.roles:
                notes += pattern(_bars_of(song, s), rng)
        pan = float(np.clip(table.pan + rng.uniform(-0.3, 0.3), -1.0, 1.0)) if role not in ("bass", "drums") \
            else float(rng.uniform(-0.05, 0.05))
        song.parts[role] = Part(role, program, style, style_tags, notes, pan,
                                int(np.clip(table.volume + rng.integers(-8, 9), 40, 127)), table.reverb)
    return song


def _bars_of(song: Song, section: Section) -> list[Bar]:
    bars = []
    for j, degree in enumerate(section.degrees):
        nxt = section.degrees[(j + 1) % len(section.degrees)]
        size = 4 if song.genre == "jazz" else 3
        bars.append(Bar(start=float((section.start_bar + j) * song.beats_per_bar),
                        beats=song.beats_per_bar,
                        chord=diatonic_chord(song.key, degree, size),
                        next_chord=diatonic_chord(song.key, nxt, size),
                        key=song.key, energy=section.energy,
                        first=j == 0, last=j == section.bars - 1))
    return bars


def _mood_words(genre: Genre, key: Key, tempo: float, rng: np.random.Generator) -> tuple[str, ...]:
    """Two mood words from the mode and tempo, one from the genre."""
    fast = tempo >= 110
    table = {
        ("major", True): ("happy", "upbeat", "bright", "cheerful"),
        ("major", False): ("calm", "warm", "peaceful", "tender"),
        ("minor", True): ("tense", "driving", "dark", "urgent"),
        ("minor", False): ("sad", "melancholic", "moody", "wistful"),
    }[(key.mode, fast)]
    picks = rng.choice(len(table), size=2, replace=False)
    return tuple(table[int(i)] for i in picks) + (_choose(genre.moods, rng),)


def chord_name(key: Key, degree: int) -> str:
    """Human chord symbol for a diatonic triad, e.g. 'Am' or 'F'."""
    chord = diatonic_chord(key, degree, 3)
    third = (chord.pitch_classes[1] - chord.root) % 12
    fifth = (chord.pitch_classes[2] - chord.root) % 12
    suffix = "dim" if fifth == 6 else ("m" if third == 3 else "")
    return NOTE_NAMES[chord.root] + suffix
