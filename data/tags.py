"""Human-like tag lists for stems, the captions CLAP and the bridge learn from.

A musician tagging a stem names the instrument, maybe its family, register and playing
style, the tempo, key and a mood or two, in no fixed order and not always all of them.
"""
from __future__ import annotations

import numpy as np

from sideman.data.arrangement import Part, Song


def register_word(part: Part) -> str:
    """'low', 'mid' or 'high' from the median pitch; 'drum kit' for drums."""
    if part.role == "drums":
        return "drum kit"
    if not part.notes:
        return "mid"
    median = float(np.median([n.pitch for n in part.notes]))
    return "low" if median < 50 else ("high" if median > 74 else "mid")


def tempo_words(tempo: float) -> tuple[str, str]:
    label = "slow" if tempo < 90 else ("medium tempo" if tempo < 125 else "fast")
    return label, f"{int(round(tempo))} bpm"


def stem_tags(song: Song, part: Part, rng: np.random.Generator) -> list[str]:
    """Tags for one stem: the instrument name always first, the rest shuffled and thinned."""
    optional = [part.program.family, register_word(part), *part.style_tags[:1],
                *part.program.words[:2], *tempo_words(song.tempo), song.key.name,
                song.genre, *song.moods]
    if song.beats_per_bar == 3:
        optional.append("3/4 time")
    kept = [t for t in dict.fromkeys(optional) if t != part.program.name and rng.random() < 0.8]
    rng.shuffle(kept)
    return [part.program.name] + kept


def caption(tags: list[str]) -> str:
    """The text a CLAP text tower sees: the tags joined by commas."""
    return ", ".join(tags)
