"""Lead melodies: motif-based phrases that follow the harmony.

A phrase repeats a one-bar rhythmic motif, varies it every third bar and cadences on a
long chord tone at the end of the section. Pitches move by scale steps, landing on chord
tones on strong beats, inside the role's range.
"""
from __future__ import annotations

import numpy as np

from sideman.data.instruments import ROLE_TABLE
from sideman.data.patterns import Bar, Note, Pattern, _vel

# One-bar rhythms as (onset, duration) in beats, per meter and style.
RHYTHMS = {
    ("legato", 4): (((0, 1.5), (1.5, 0.5), (2, 2)), ((0, 1), (1, 1), (2, 1.5), (3.5, 0.5)),
                    ((0, 2), (2, 1), (3, 1))),
    ("legato", 3): (((0, 2), (2, 1)), ((0, 1), (1, 1), (2, 1)), ((0, 1.5), (1.5, 1.5))),
    ("staccato", 4): (((0, .5), (.5, .5), (1.5, .5), (2, .5), (3, .5)),
                      ((0, .5), (1, .5), (1.5, .5), (2.5, .5), (3, .5), (3.5, .5))),
    ("staccato", 3): (((0, .5), (.5, .5), (1.5, .5), (2, .5)), ((0, .5), (1, .5), (1.5, .5), (2.5, .5))),
    ("long_tones", 4): (((0, 4),), ((0, 2), (2, 2))),
    ("long_tones", 3): (((0, 3),), ((0, 2), (2, 1))),
    ("runs", 4): (tuple((0.25 * i, 0.25) for i in range(8)) + ((2, 1), (3, 1)),
                  ((0, 1),) + tuple((1 + 0.25 * i, 0.25) for i in range(12))),
    ("runs", 3): (tuple((0.25 * i, 0.25) for i in range(8)) + ((2, 1),),
                  ((0, 1),) + tuple((1 + 0.25 * i, 0.25) for i in range(8))),
}

ARTICULATION = {"legato": 0.95, "staccato": 0.5, "long_tones": 0.97, "runs": 0.9}


def _nearest_chord_tone(pitch: int, chord_classes: tuple[int, ...], candidates: list[int]) -> int:
    tones = [p for p in candidates if p % 12 in chord_classes]
    return min(tones, key=lambda p: abs(p - pitch)) if tones else pitch


def _phrase(style: str, bars: list[Bar], rng: np.random.Generator) -> list[Note]:
    role = ROLE_TABLE["lead"]
    notes: list[Note] = []
    pitch = None
    motif = None
    for i, bar in enumerate(bars):
        scale = bar.key.scale_pitches(role.low, role.high)
        if pitch is None:
            pitch = _nearest_chord_tone(int(rng.integers(role.low + 5, role.high - 8)),
                                        bar.chord.pitch_classes, scale)
        options = RHYTHMS[(style, bar.beats)]
        if motif is None or i % 4 == 2:
            motif = options[int(rng.integers(len(options)))]
        rhythm = ((0, bar.beats),) if bar.last and len(bars) > 1 else motif
        for onset, length in rhythm:
            idx = scale.index(pitch) if pitch in scale else len(scale) // 2
            step = int(rng.choice((-2, -1, -1, 0, 1, 1, 2)))
            pitch = scale[int(np.clip(idx + step, 0, len(scale) - 1))]
            if onset == int(onset) and int(onset) % 2 == 0:
                pitch = _nearest_chord_tone(pitch, bar.chord.pitch_classes, scale)
            duration = length * ARTICULATION[style]
            notes.append(Note(bar.start + onset, duration, pitch, _vel(rng, 90, bar.energy, 10)))
    return notes


def lead_legato(bars, rng):
    return _phrase("legato", bars, rng)


def lead_staccato(bars, rng):
    return _phrase("staccato", bars, rng)


def lead_long_tones(bars, rng):
    return _phrase("long_tones", bars, rng)


def lead_runs(bars, rng):
    return _phrase("runs", bars, rng)


LEAD_STYLES: dict[str, tuple[Pattern, tuple[str, ...]]] = {
    "legato": (lead_legato, ("legato melody", "singing lead")),
    "staccato": (lead_staccato, ("staccato riff", "short notes")),
    "long_tones": (lead_long_tones, ("long notes", "slow melody")),
    "runs": (lead_runs, ("fast runs", "virtuosic")),
}
