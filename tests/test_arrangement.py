"""The procedural song generator: determinism, variety and musical sanity."""
from collections import Counter

import mido
import numpy as np
import pytest

from sideman.data.arrangement import generate_song
from sideman.data.instruments import DRUM_CHANNEL, ROLE_TABLE, ROLES
from sideman.data.midi_io import write_midi
from sideman.data.tags import stem_tags

SONGS = [generate_song((0, i), 30.0, f"s{i}") for i in range(60)]


def _notes(song):
    return {r: [(n.start, n.duration, n.pitch, n.velocity) for n in p.notes] for r, p in song.parts.items()}


def test_same_seed_same_song_and_different_seed_different_song():
    a, b = generate_song((0, 3), 30.0), generate_song((0, 3), 30.0)
    assert _notes(a) == _notes(b) and a.tempo == b.tempo and a.key == b.key
    assert _notes(a) != _notes(generate_song((0, 4), 30.0))


def test_every_song_has_six_roles_that_play():
    for song in SONGS:
        assert tuple(song.parts) == ROLES and len(ROLES) >= 6
        for role, part in song.parts.items():
            assert part.notes, f"{song.song_id}: {role} has no notes"
            assert all(n.duration > 0 and 1 <= n.velocity <= 127 and 0 <= n.pitch <= 127
                       for n in part.notes)


def test_songs_cover_the_requested_length_with_sections():
    for song in SONGS:
        seconds = song.total_bars * song.beats_per_bar * song.seconds_per_beat
        assert seconds >= 30.0
        assert [s.start_bar for s in song.sections] == list(np.cumsum([0] + [s.bars for s in song.sections[:-1]]))


def test_variety_across_songs():
    assert {s.beats_per_bar for s in SONGS} == {3, 4}
    assert len({s.genre for s in SONGS}) >= 5
    assert len({s.key for s in SONGS}) >= 10
    for role in ROLES:
        programs = Counter(s.parts[role].program.program for s in SONGS)
        styles = Counter(s.parts[role].style for s in SONGS)
        assert len(programs) >= 4, f"{role}: {programs}"
        assert len(styles) >= 3, f"{role}: {styles}"


def test_pitched_parts_stay_near_their_register():
    for song in SONGS:
        for role in ("bass", "lead"):
            pitches = [n.pitch for n in song.parts[role].notes]
            table = ROLE_TABLE[role]
            assert table.low - 12 <= np.median(pitches) <= table.high + 12
        assert np.median([n.pitch for n in song.parts["bass"].notes]) < \
            np.median([n.pitch for n in song.parts["lead"].notes])


def test_tags_name_the_instrument_first_and_carry_tempo_or_key_words():
    rng = np.random.default_rng(0)
    song = SONGS[0]
    for role, part in song.parts.items():
        tags = stem_tags(song, part, rng)
        assert tags[0] == part.program.name
        assert len(tags) == len(set(tags)) >= 4


def test_midi_file_round_trip(tmp_path):
    song = SONGS[1]
    path = write_midi(song, tmp_path / "song.mid")
    mid = mido.MidiFile(str(path))
    assert len(mid.tracks) == 1 + len(ROLES)
    meta = {m.type: m for m in mid.tracks[0]}
    assert mido.tempo2bpm(meta["set_tempo"].tempo) == pytest.approx(song.tempo)
    assert meta["time_signature"].numerator == song.beats_per_bar
    for track, role in zip(mid.tracks[1:], ROLES):
        ons = [m for m in track if m.type == "note_on"]
        assert len(ons) == len(song.parts[role].notes)
        programs = [m.program for m in track if m.type == "program_change"]
        assert programs == [song.parts[role].program.program]
        channels = {m.channel for m in ons}
        assert (channels == {DRUM_CHANNEL}) == (role == "drums")
    assert mid.length == pytest.approx(song.total_bars * song.beats_per_bar * song.seconds_per_beat, abs=0.01)
