"""Music theory for the procedural song generator: keys, scales, chords and progressions.

Pitches are MIDI note numbers (60 = middle C). Scale degrees are 0-based (0 = tonic).
"""
from __future__ import annotations

from dataclasses import dataclass

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
}

# Common progressions as 0-based scale degrees, per mode.
PROGRESSIONS = {
    "major": (
        (0, 4, 5, 3),  # I V vi IV
        (0, 3, 4, 3),  # I IV V IV
        (5, 3, 0, 4),  # vi IV I V
        (0, 5, 3, 4),  # I vi IV V
        (1, 4, 0, 0),  # ii V I I
        (0, 3, 0, 4),  # I IV I V
        (3, 4, 2, 5),  # IV V iii vi
    ),
    "minor": (
        (0, 5, 2, 6),  # i VI III VII
        (0, 3, 4, 0),  # i iv v i
        (0, 6, 5, 6),  # i VII VI VII
        (0, 3, 6, 2),  # i iv VII III
        (0, 5, 3, 4),  # i VI iv v
        (0, 0, 3, 4),  # i i iv v
    ),
}


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (0-11) and mode ('major' or 'minor')."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"

    @property
    def scale(self) -> tuple[int, ...]:
        return SCALES[self.mode]

    def degree_pitch_class(self, degree: int) -> int:
        """Pitch class (0-11) of a scale degree; degrees wrap across octaves."""
        octave, step = divmod(degree, 7)
        return (self.tonic + self.scale[step] + 12 * octave) % 12

    def scale_pitches(self, low: int, high: int) -> list[int]:
        """All MIDI pitches of the scale in [low, high]."""
        classes = {(self.tonic + s) % 12 for s in self.scale}
        return [p for p in range(low, high + 1) if p % 12 in classes]


@dataclass(frozen=True)
class Chord:
    """A diatonic chord: root degree, its pitch classes (root first) and size (3 or 4)."""

    degree: int
    pitch_classes: tuple[int, ...]

    @property
    def root(self) -> int:
        return self.pitch_classes[0]

    @property
    def fifth(self) -> int:
        return self.pitch_classes[2]


def diatonic_chord(key: Key, degree: int, size: int = 3) -> Chord:
    """Stack thirds on a scale degree: size 3 = triad, 4 = seventh chord."""
    classes = tuple(key.degree_pitch_class(degree + 2 * i) for i in range(size))
    return Chord(degree=degree, pitch_classes=classes)


def nearest_pitch(pitch_class: int, around: int) -> int:
    """The MIDI pitch of a pitch class closest to `around`."""
    base = around - ((around - pitch_class) % 12)
    return base if around - base <= 6 else base + 12


def voice_chord(chord: Chord, low: int, high: int, count: int) -> list[int]:
    """`count` ascending chord tones starting at the lowest chord tone >= low, capped at high."""
    pitches = [p for p in range(low, high + 1) if p % 12 in chord.pitch_classes]
    start = next(i for i, p in enumerate(pitches) if p % 12 == chord.root) if pitches else 0
    voiced = pitches[start:start + count]
    return voiced if voiced else pitches[:count]


def pitch_in_range(pitch_class: int, low: int, high: int) -> int:
    """The lowest MIDI pitch of a pitch class within [low, high] (low must span an octave)."""
    return low + ((pitch_class - low) % 12) if low + ((pitch_class - low) % 12) <= high else low
