"""Instrument roles of the synthetic corpus and their General MIDI programs.

Each role has several GM programs (so a role never sounds like one fixed preset), a pitch
range, a default pan/level, and human words used to build tag captions.
"""
from __future__ import annotations

from dataclasses import dataclass

# Role names, in mixing order. The renderer writes one stem per role.
ROLES = ("drums", "bass", "keys", "guitar", "pads", "lead")

DRUM_CHANNEL = 9  # GM percussion channel (10 in 1-based numbering)


@dataclass(frozen=True)
class Program:
    """A General MIDI program as a musician would name it.

    program: 0-127 GM program (for drums, the GM2 drum-kit number on bank 128).
    name: what a person would call it ("fingered electric bass").
    family: the instrument family tag ("bass", "piano", "strings", ...).
    words: extra descriptive tags ("warm", "distorted", ...).
    """

    program: int
    name: str
    family: str
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Role:
    """An arrangement role: which programs may play it, and where it sits."""

    name: str
    programs: tuple[Program, ...]
    low: int  # lowest MIDI pitch the role plays
    high: int  # highest MIDI pitch the role plays
    pan: float  # -1 (left) .. 1 (right), centre of the role's random pan
    volume: int  # CC7 volume 0-127
    reverb: int  # CC91 reverb send 0-127


ROLE_TABLE: dict[str, Role] = {
    "drums": Role("drums", (
        Program(0, "standard drum kit", "drums", ("acoustic", "kit")),
        Program(8, "room drum kit", "drums", ("roomy", "acoustic")),
        Program(16, "power drum kit", "drums", ("punchy", "rock")),
        Program(24, "electronic drum kit", "drums", ("electronic",)),
        Program(25, "808 drum machine", "drums", ("electronic", "808", "drum machine")),
        Program(32, "jazz drum kit", "drums", ("jazzy", "acoustic")),
        Program(40, "brush drum kit", "drums", ("brushes", "soft")),
    ), low=35, high=81, pan=0.0, volume=100, reverb=30),
    "bass": Role("bass", (
        Program(32, "upright bass", "bass", ("acoustic", "warm", "jazzy")),
        Program(33, "fingered electric bass", "bass", ("electric", "round")),
        Program(34, "picked electric bass", "bass", ("electric", "punchy")),
        Program(35, "fretless bass", "bass", ("smooth", "electric")),
        Program(36, "slap bass", "bass", ("funky", "percussive")),
        Program(38, "synth bass", "bass", ("synth", "electronic")),
        Program(39, "analog synth bass", "bass", ("synth", "fat")),
    ), low=28, high=55, pan=0.0, volume=105, reverb=10),
    "keys": Role("keys", (
        Program(0, "acoustic grand piano", "piano", ("acoustic", "piano")),
        Program(1, "bright piano", "piano", ("bright", "acoustic")),
        Program(4, "rhodes electric piano", "electric piano", ("warm", "vintage", "mellow")),
        Program(5, "fm electric piano", "electric piano", ("glassy", "eighties")),
        Program(6, "harpsichord", "keyboard", ("baroque", "plucked")),
        Program(7, "clavinet", "keyboard", ("funky", "percussive")),
        Program(11, "vibraphone", "mallets", ("mallets", "shimmering")),
        Program(16, "drawbar organ", "organ", ("organ", "vintage")),
        Program(17, "percussive organ", "organ", ("organ", "bright")),
    ), low=48, high=79, pan=-0.3, volume=90, reverb=40),
    "guitar": Role("guitar", (
        Program(24, "nylon string guitar", "guitar", ("acoustic", "classical", "soft")),
        Program(25, "steel string acoustic guitar", "guitar", ("acoustic", "folk")),
        Program(26, "jazz guitar", "guitar", ("electric", "jazzy", "mellow")),
        Program(27, "clean electric guitar", "guitar", ("electric", "clean")),
        Program(28, "muted electric guitar", "guitar", ("electric", "muted", "funky")),
        Program(29, "overdriven guitar", "guitar", ("electric", "overdriven", "gritty")),
        Program(30, "distortion guitar", "guitar", ("electric", "distorted", "heavy")),
    ), low=40, high=76, pan=0.35, volume=88, reverb=35),
    "pads": Role("pads", (
        Program(48, "string ensemble", "strings", ("orchestral", "lush")),
        Program(49, "slow strings", "strings", ("orchestral", "soft")),
        Program(50, "synth strings", "strings", ("synth", "retro")),
        Program(45, "pizzicato strings", "strings", ("plucked", "orchestral")),
        Program(89, "warm pad", "synth pad", ("synth", "warm", "ambient")),
        Program(90, "polysynth pad", "synth pad", ("synth", "eighties")),
        Program(92, "bowed pad", "synth pad", ("ambient", "airy")),
        Program(94, "halo pad", "synth pad", ("ambient", "ethereal")),
    ), low=52, high=81, pan=0.0, volume=78, reverb=60),
    "lead": Role("lead", (
        Program(73, "flute", "woodwind", ("airy", "breathy")),
        Program(71, "clarinet", "woodwind", ("woody", "warm")),
        Program(68, "oboe", "woodwind", ("nasal", "orchestral")),
        Program(56, "trumpet", "brass", ("brassy", "bright")),
        Program(65, "alto sax", "saxophone", ("jazzy", "smooth")),
        Program(66, "tenor sax", "saxophone", ("jazzy", "breathy")),
        Program(40, "violin", "strings", ("bowed", "expressive")),
        Program(80, "square lead synth", "synth lead", ("synth", "chiptune", "retro")),
        Program(81, "sawtooth lead synth", "synth lead", ("synth", "bright", "buzzy")),
        Program(22, "harmonica", "harmonica", ("bluesy", "reedy")),
    ), low=60, high=88, pan=0.1, volume=92, reverb=45),
}

# GM percussion keys used by the drum patterns.
KICK, RIM, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE = 45, 47, 50, 49, 51
