"""Playing patterns for the accompaniment roles (drums, bass, keys, guitar, pads).

Every pattern is a function `pattern(bars, rng) -> list[Note]` over the bars of one
section, so it can keep state from bar to bar. Times are in quarter-note beats from the
start of the song. `STYLES[role]` maps a style name to its function and its human tags.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sideman.data.instruments import (CLAP, CLOSED_HAT, CRASH, HIGH_TOM, KICK, LOW_TOM, MID_TOM,
                          OPEN_HAT, PEDAL_HAT, RIDE, RIM, SNARE)
from sideman.data.theory import Chord, Key, nearest_pitch, voice_chord


@dataclass(frozen=True)
class Note:
    """One note: start and duration in beats, MIDI pitch, velocity 1-127."""

    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Bar:
    """What a pattern needs to know about one bar."""

    start: float  # beat position of the bar's downbeat
    beats: int  # beats per bar (3 or 4)
    chord: Chord
    next_chord: Chord
    key: Key
    energy: float  # 0..1, section intensity
    first: bool  # first bar of its section
    last: bool  # last bar of its section


Pattern = Callable[[list[Bar], np.random.Generator], list[Note]]


def _vel(rng: np.random.Generator, base: float, energy: float, spread: int = 8) -> int:
    """A humanised velocity around `base`, louder with section energy."""
    value = base * (0.75 + 0.35 * energy) + rng.integers(-spread, spread + 1)
    return int(np.clip(value, 1, 127))


def _eighths(bar: Bar) -> list[float]:
    return [bar.start + 0.5 * i for i in range(2 * bar.beats)]


# ---------------------------------------------------------------------------- drums

def _drum_fill(bar: Bar, rng: np.random.Generator) -> list[Note]:
    """Toms down the last beat of a section."""
    toms = (HIGH_TOM, MID_TOM, LOW_TOM, LOW_TOM)
    start = bar.start + bar.beats - 1
    return [Note(start + 0.25 * i, 0.25, toms[i], _vel(rng, 100, bar.energy)) for i in range(4)]


def _drum_bars(bars: list[Bar], rng: np.random.Generator, hits) -> list[Note]:
    """Shared drum loop: per-bar hits, crash on section start, fill on section end."""
    notes: list[Note] = []
    for bar in bars:
        fill = bar.last and len(bars) > 1 and rng.random() < 0.7
        for beat, pitch, base in hits(bar):
            if fill and beat >= bar.beats - 1:
                continue
            notes.append(Note(bar.start + beat, 0.25, pitch, _vel(rng, base, bar.energy)))
        if bar.first:
            notes.append(Note(bar.start, 1.0, CRASH, _vel(rng, 100, bar.energy)))
        if fill:
            notes.extend(_drum_fill(bar, rng))
    return notes


def drums_backbeat(bars, rng):
    """Rock backbeat: kick on 1 (and 3), snare on the backbeats, straight hi-hat eighths."""
    def hits(bar):
        backbeats = (1, 3) if bar.beats == 4 else (1, 2)
        out = [(0.0, KICK, 105)] + [(float(b), SNARE, 100) for b in backbeats]
        if bar.beats == 4:
            out += [(2.0, KICK, 95), (2.5, KICK, 80)]
        out += [(0.5 * i, CLOSED_HAT, 80 if i % 2 == 0 else 62) for i in range(2 * bar.beats)]
        return out
    return _drum_bars(bars, rng, hits)


def drums_four_on_floor(bars, rng):
    """Dance beat: kick on every beat, clap on the backbeats, open hat on the off-beats."""
    def hits(bar):
        out = [(float(b), KICK, 110) for b in range(bar.beats)]
        out += [(float(b), CLAP, 95) for b in range(1, bar.beats, 2)]
        out += [(b + 0.5, OPEN_HAT, 75) for b in range(bar.beats)]
        return out
    return _drum_bars(bars, rng, hits)


def drums_half_time(bars, rng):
    """Half-time groove: snare only on beat 3, busy sixteenth hats."""
    def hits(bar):
        out = [(0.0, KICK, 108), (float(bar.beats // 2), SNARE, 105), (bar.beats - 0.75, KICK, 85)]
        out += [(0.25 * i, CLOSED_HAT, 70 if i % 2 == 0 else 50) for i in range(4 * bar.beats)]
        return out
    return _drum_bars(bars, rng, hits)


def drums_swing_ride(bars, rng):
    """Jazz time: swung ride cymbal, hi-hat pedal on the backbeats, feathered kick."""
    def hits(bar):
        out = [(0.0, KICK, 60)]
        for b in range(bar.beats):
            out.append((float(b), RIDE, 85))
            if b % 2 == 1:
                out += [(b + 2 / 3, RIDE, 65), (float(b), PEDAL_HAT, 70)]
        out.append((bar.beats - 1 + 2 / 3, RIM, 45))
        return out
    return _drum_bars(bars, rng, hits)


def drums_waltz(bars, rng):
    """Oom-pah-pah: kick on 1, snare and hat on the other beats (any meter)."""
    def hits(bar):
        out = [(0.0, KICK, 105)]
        out += [(float(b), SNARE, 80) for b in range(1, bar.beats)]
        out += [(float(b), CLOSED_HAT, 70) for b in range(bar.beats)]
        return out
    return _drum_bars(bars, rng, hits)


def drums_breakbeat(bars, rng):
    """Syncopated breakbeat: displaced kicks, ghost snares."""
    def hits(bar):
        out = [(0.0, KICK, 110), (1.0, SNARE, 105), (1.75, KICK, 90)]
        if bar.beats == 4:
            out += [(2.5, KICK, 95), (3.0, SNARE, 105), (3.75, SNARE, 45)]
        else:
            out += [(2.5, SNARE, 90)]
        out += [(0.5 * i, CLOSED_HAT, 72) for i in range(2 * bar.beats)]
        return out
    return _drum_bars(bars, rng, hits)


# ----------------------------------------------------------------------------- bass

def _bass_root(bar: Bar, low: int = 33) -> int:
    return nearest_pitch(bar.chord.root, low + 7)


def bass_whole_notes(bars, rng):
    """Roots held for the whole bar."""
    return [Note(b.start, b.beats - 0.1, _bass_root(b), _vel(rng, 95, b.energy)) for b in bars]


def bass_eighth_pulse(bars, rng):
    """Driving straight eighths on the root."""
    return [Note(t, 0.45, _bass_root(b), _vel(rng, 92 if i % 2 == 0 else 80, b.energy))
            for b in bars for i, t in enumerate(_eighths(b))]


def bass_root_fifth(bars, rng):
    """Root on the downbeat, fifth in between, country/two-beat feel."""
    notes = []
    for b in bars:
        root = _bass_root(b)
        fifth = nearest_pitch(b.chord.fifth, root + 5)
        for beat in range(b.beats):
            pitch = root if beat % 2 == 0 else fifth
            notes.append(Note(b.start + beat, 0.9, pitch, _vel(rng, 95, b.energy)))
    return notes


def bass_walking(bars, rng):
    """Walking quarter notes through chord tones, approaching the next root chromatically."""
    notes = []
    for b in bars:
        root = _bass_root(b)
        tones = [nearest_pitch(pc, root + 4) for pc in b.chord.pitch_classes]
        target = _bass_root(Bar(0, 0, b.next_chord, b.next_chord, b.key, 0, False, False))
        line = [root] + [int(rng.choice(tones)) for _ in range(b.beats - 2)]
        line.append(target + (1 if rng.random() < 0.5 else -1))
        notes += [Note(b.start + i, 0.95, p, _vel(rng, 88, b.energy)) for i, p in enumerate(line)]
    return notes


def bass_octaves(bars, rng):
    """Disco octaves: root and its upper octave alternating in eighths."""
    notes = []
    for b in bars:
        root = _bass_root(b)
        notes += [Note(t, 0.4, root + 12 * (i % 2), _vel(rng, 95, b.energy))
                  for i, t in enumerate(_eighths(b))]
    return notes


def bass_syncopated(bars, rng):
    """Funk syncopation: the one, the and-of-two, the four, with ghosted passing notes."""
    notes = []
    for b in bars:
        root = _bass_root(b)
        offsets = (0.0, 1.5, 3.0, 3.5) if b.beats == 4 else (0.0, 1.5, 2.5)
        for i, off in enumerate(offsets):
            pitch = root if i % 2 == 0 else nearest_pitch(b.chord.pitch_classes[i % 3], root + 7)
            notes.append(Note(b.start + off, 0.4, pitch, _vel(rng, 100 - 15 * (i % 2), b.energy)))
    return notes


# ----------------------------------------------------------------------------- keys

def _chord_voicing(bar: Bar, low: int, count: int = 4) -> list[int]:
    return voice_chord(bar.chord, low, low + 24, count)


def keys_block_chords(bars, rng):
    """Block chords on each half bar (or the whole bar in 3/4)."""
    notes = []
    for b in bars:
        hits = (0.0, 2.0) if b.beats == 4 else (0.0,)
        length = 2.0 if b.beats == 4 else 3.0
        for h in hits:
            vel = _vel(rng, 80, b.energy)
            notes += [Note(b.start + h, length - 0.05, p, vel) for p in _chord_voicing(b, 55)]
    return notes


def keys_comping(bars, rng):
    """Off-beat chord stabs, like a rhythm-section pianist."""
    notes = []
    for b in bars:
        for beat in range(b.beats):
            if rng.random() < 0.8:
                vel = _vel(rng, 78, b.energy)
                notes += [Note(b.start + beat + 0.5, 0.3, p, vel) for p in _chord_voicing(b, 57, 3)]
    return notes


def keys_arpeggio(bars, rng):
    """Rising and falling sixteenth-note arpeggios over two octaves."""
    notes = []
    for b in bars:
        tones = voice_chord(b.chord, 52, 84, 7)
        cycle = tones + tones[-2:0:-1]
        for i in range(4 * b.beats):
            notes.append(Note(b.start + 0.25 * i, 0.3, cycle[i % len(cycle)], _vel(rng, 72, b.energy)))
    return notes


def keys_broken_chord(bars, rng):
    """Alberti-style broken chords: low, high, middle, high in eighths."""
    notes = []
    for b in bars:
        low, mid, high = _chord_voicing(b, 52, 3)
        order = (low, high, mid, high)
        notes += [Note(t, 0.5, order[i % 4], _vel(rng, 70, b.energy))
                  for i, t in enumerate(_eighths(b))]
    return notes


def keys_ballad(bars, rng):
    """Left-hand root octave held, right-hand chord on beat one then a gentle re-strike."""
    notes = []
    for b in bars:
        root = nearest_pitch(b.chord.root, 43)
        notes += [Note(b.start, b.beats - 0.1, root, _vel(rng, 70, b.energy)),
                  Note(b.start, b.beats - 0.1, root + 12, _vel(rng, 64, b.energy))]
        for h in (0.0, b.beats - 1.0):
            vel = _vel(rng, 66, b.energy)
            notes += [Note(b.start + h, 1.0 if h else b.beats - 1.0, p, vel)
                      for p in _chord_voicing(b, 60, 3)]
    return notes


# ----------------------------------------------------------------------------- guitar

def _guitar_voicing(bar: Bar) -> list[int]:
    """A six-string-like voicing: root low, chord tones stacked up to six notes."""
    return voice_chord(bar.chord, 40, 72, 6)


def _strum(start: float, pitches: list[int], length: float, vel: int, down: bool) -> list[Note]:
    """Stagger the strings by ~15 ms at 120 bpm: down-strokes low-to-high, up-strokes reversed."""
    order = pitches if down else pitches[::-1]
    return [Note(start + 0.03 * i, length, p, vel) for i, p in enumerate(order)]


def guitar_strummed(bars, rng):
    """Strumming pattern down, down-up, up-down-up on the eighths."""
    pattern = (True, None, True, False, None, False, True, False)
    notes = []
    for b in bars:
        voicing = _guitar_voicing(b)
        for i, t in enumerate(_eighths(b)):
            stroke = pattern[i % len(pattern)]
            if stroke is not None:
                notes += _strum(t, voicing, 0.5, _vel(rng, 78 if stroke else 64, b.energy), stroke)
    return notes


def guitar_fingerpicked(bars, rng):
    """Travis-style fingerpicking: alternating bass with melody tones on the off-beats."""
    notes = []
    for b in bars:
        v = _guitar_voicing(b)
        for i, t in enumerate(_eighths(b)):
            pitch = v[i % 2] if i % 2 == 0 else v[min(len(v) - 1, 2 + (i // 2) % 4)]
            notes.append(Note(t, 0.7, pitch, _vel(rng, 70, b.energy)))
    return notes


def guitar_power_chords(bars, rng):
    """Palm-muted power chords (root, fifth, octave) in driving eighths."""
    notes = []
    for b in bars:
        root = nearest_pitch(b.chord.root, 45)
        shape = (root, root + 7, root + 12)
        for i, t in enumerate(_eighths(b)):
            vel = _vel(rng, 84 if i % 2 == 0 else 70, b.energy)
            notes += [Note(t, 0.4, p, vel) for p in shape]
    return notes


def guitar_offbeat_skank(bars, rng):
    """Reggae/ska skank: short upper-voicing chords on every off-beat."""
    notes = []
    for b in bars:
        voicing = voice_chord(b.chord, 60, 76, 3)
        for beat in range(b.beats):
            notes += _strum(b.start + beat + 0.5, voicing, 0.2, _vel(rng, 80, b.energy), False)
    return notes


# ----------------------------------------------------------------------------- pads

def pads_sustained(bars, rng):
    """Whole-bar chords, tied over when the harmony does not change."""
    notes = []
    held: list[Note] = []
    for b in bars:
        voicing = voice_chord(b.chord, 55, 81, 4)
        if held and [n.pitch for n in held] == voicing:
            held = [Note(n.start, n.duration + b.beats, n.pitch, n.velocity) for n in held]
            continue
        notes += held
        vel = _vel(rng, 70, b.energy, 4)
        held = [Note(b.start, b.beats - 0.05, p, vel) for p in voicing]
    return notes + held


def pads_half_bar(bars, rng):
    """Chords restruck every half bar with soft attacks."""
    notes = []
    for b in bars:
        voicing = voice_chord(b.chord, 57, 81, 3)
        step = b.beats / 2 if b.beats == 4 else float(b.beats)
        t = 0.0
        while t < b.beats - 1e-6:
            vel = _vel(rng, 65, b.energy, 4)
            notes += [Note(b.start + t, step - 0.05, p, vel) for p in voicing]
            t += step
    return notes


def pads_pulsing(bars, rng):
    """Repeated quarter-note chords, a pulsing string section."""
    notes = []
    for b in bars:
        voicing = voice_chord(b.chord, 55, 79, 3)
        for beat in range(b.beats):
            vel = _vel(rng, 72 if beat == 0 else 62, b.energy, 4)
            notes += [Note(b.start + beat, 0.8, p, vel) for p in voicing]
    return notes


def pads_high_drone(bars, rng):
    """A high open-fifth drone on the chord root, two bars per note."""
    notes = []
    for i, b in enumerate(bars):
        if i % 2 == 0:
            root = nearest_pitch(b.chord.root, 67)
            length = b.beats * min(2, len(bars) - i) - 0.05
            vel = _vel(rng, 66, b.energy, 4)
            notes += [Note(b.start, length, root, vel), Note(b.start, length, root + 7, vel)]
    return notes


STYLES: dict[str, dict[str, tuple[Pattern, tuple[str, ...]]]] = {
    "drums": {
        "backbeat": (drums_backbeat, ("rock beat", "backbeat")),
        "four_on_floor": (drums_four_on_floor, ("four on the floor", "dance beat")),
        "half_time": (drums_half_time, ("half-time groove", "laid back")),
        "swing_ride": (drums_swing_ride, ("swing", "ride cymbal")),
        "waltz": (drums_waltz, ("waltz feel",)),
        "breakbeat": (drums_breakbeat, ("breakbeat", "syncopated")),
    },
    "bass": {
        "whole_notes": (bass_whole_notes, ("sustained", "simple root notes")),
        "eighth_pulse": (bass_eighth_pulse, ("driving eighths", "pulsing")),
        "root_fifth": (bass_root_fifth, ("root-fifth", "two-beat")),
        "walking": (bass_walking, ("walking bass",)),
        "octaves": (bass_octaves, ("octave bass", "disco")),
        "syncopated": (bass_syncopated, ("syncopated", "funky groove")),
    },
    "keys": {
        "block_chords": (keys_block_chords, ("block chords", "chordal")),
        "comping": (keys_comping, ("comping", "off-beat stabs")),
        "arpeggio": (keys_arpeggio, ("arpeggiated", "fast arpeggios")),
        "broken_chord": (keys_broken_chord, ("broken chords",)),
        "ballad": (keys_ballad, ("ballad", "gentle")),
    },
    "guitar": {
        "strummed": (guitar_strummed, ("strummed", "rhythm guitar")),
        "fingerpicked": (guitar_fingerpicked, ("fingerpicked", "arpeggiated")),
        "power_chords": (guitar_power_chords, ("power chords", "palm muted")),
        "offbeat_skank": (guitar_offbeat_skank, ("off-beat skank", "reggae")),
    },
    "pads": {
        "sustained": (pads_sustained, ("sustained", "long chords")),
        "half_bar": (pads_half_bar, ("slow chords", "soft")),
        "pulsing": (pads_pulsing, ("pulsing", "rhythmic")),
        "high_drone": (pads_high_drone, ("drone", "open fifths")),
    },
}
