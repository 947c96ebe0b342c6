"""The text-control check's pieces on inputs whose answer is known."""
from pathlib import Path

import numpy as np

from sideman.data.instruments import ROLES
from sideman.data.multitrack import BLOCK, Song, Stem
from sideman.evaluation.text_control import (ROLE_PROMPTS, Probe, _accuracy, loudest_window,
                                           nearest_role, probes)


def _song(song_id: str, roles: dict[str, np.ndarray], frames: int) -> Song:
    stems = [Stem(r, Path(f"/nowhere/{r}.flac"), r, (r,), activity=a) for r, a in roles.items()]
    return Song(song_id, "corpus", Path("/nowhere"), stems, frames=frames)


def test_every_role_has_its_own_prompt():
    assert set(ROLE_PROMPTS) == set(ROLES)
    assert len(set(ROLE_PROMPTS.values())) == len(ROLES)


def test_loudest_window_finds_the_loud_part():
    level = np.zeros(100)
    level[60:70] = 1.0
    song = _song("s", {"bass": level, "drums": np.ones(100)}, 100 * BLOCK)
    start = loudest_window(song, "bass", 10 * BLOCK)
    assert start == 60 * BLOCK


def test_probes_skip_songs_without_the_role_or_other_stems():
    full = _song("a", {"bass": np.ones(50), "keys": np.ones(50)}, 50 * BLOCK)
    alone = _song("b", {"bass": np.ones(50)}, 50 * BLOCK)
    short = _song("c", {"bass": np.ones(5), "keys": np.ones(5)}, 5 * BLOCK)
    chosen = probes([full, alone, short], contexts=4, samples=10 * BLOCK)
    assert {(p.song.song_id, p.role) for p in chosen} == {("a", "bass"), ("a", "keys")}


def test_nearest_role_and_accuracy():
    prompts = np.eye(len(ROLES), 8)
    audio = np.stack([prompts[ROLES.index("bass")] + 0.1, prompts[ROLES.index("lead")]])
    assert nearest_role(audio, prompts) == ["bass", "lead"]
    song = _song("a", {"bass": np.ones(4)}, 4 * BLOCK)
    result = _accuracy([Probe(song, "bass", 0), Probe(song, "drums", 0)], ["bass", "bass"])
    assert result["accuracy"] == 0.5
    assert result["per_role"] == {"drums": 0.0, "bass": 1.0}
