"""Readers for MUSDB18-HQ, Slakh2100, plain folders and our corpus, and their checks."""
import json

import numpy as np
import pytest
import soundfile as sf
import yaml

from audio_fixtures import tone, write
from sideman.data.audio import AudioFileError, audio_info, block_rms, load_audio
from sideman.data.layouts import LayoutError, detect_layout, read_multitrack


def _messages(data):
    return [str(p) for p in data.problems]


def test_musdb_layout(tmp_path):
    for split, song in (("train", "A - One"), ("test", "B - Two")):
        for i, name in enumerate(("bass", "drums", "other", "vocals", "mixture")):
            write(tmp_path / split / song / f"{name}.wav", tone(100 + 50 * i, 3.0, 44100), 44100)
    data = read_multitrack(tmp_path)
    assert data.layout == "musdb" and len(data.songs) == 2 and not data.problems
    song = next(s for s in data.songs if s.split == "train")
    assert song.song_id == "train/A - One"
    assert [s.name for s in song.stems] == ["bass", "drums", "other", "vocals"]  # mixture ignored
    assert [s.is_vocal for s in song.stems] == [False, False, False, True]
    assert song.frames == 3 * 48000  # reported at 48 kHz


def test_slakh_layout_reads_metadata_and_skips_unrendered_stems(tmp_path):
    track = tmp_path / "train" / "Track00001"
    meta = {"stems": {
        "S00": {"inst_class": "Bass", "is_drum": False, "midi_program_name": "Electric Bass (finger)",
                "audio_rendered": True},
        "S01": {"inst_class": "Drums", "is_drum": True, "midi_program_name": "Drums", "audio_rendered": True},
        "S02": {"inst_class": "Piano", "is_drum": False, "midi_program_name": "Acoustic Grand Piano",
                "audio_rendered": True},
        "S03": {"inst_class": "Guitar", "is_drum": False, "midi_program_name": "Distortion Guitar",
                "audio_rendered": False},
    }}
    track.mkdir(parents=True)
    (track / "metadata.yaml").write_text(yaml.safe_dump(meta))
    for i, sid in enumerate(("S00", "S01", "S02")):
        write(track / "stems" / f"{sid}.flac", tone(80 * (i + 1), 2.0))
    (tmp_path / "omitted" / "Track00002").mkdir(parents=True)
    (tmp_path / "omitted" / "Track00002" / "metadata.yaml").write_text(yaml.safe_dump(meta))
    data = read_multitrack(tmp_path)
    assert data.layout == "slakh" and [s.song_id for s in data.songs] == ["Track00001"]
    stems = {s.name: s for s in data.songs[0].stems}
    assert set(stems) == {"S00", "S01", "S02"}
    assert stems["S00"].tags == ("electric bass (finger)", "bass")
    assert stems["S01"].role == "drums" and data.songs[0].split == "train"


def test_folder_layout_with_tags_files(tmp_path):
    write(tmp_path / "song1" / "Bass_DI.wav", tone(60, 2.0))
    write(tmp_path / "song1" / "lead vocal.flac", tone(300, 2.0))
    write(tmp_path / "song1" / "mix.wav", tone(300, 2.0))
    (tmp_path / "song1" / "tags.json").write_text(json.dumps({"Bass_DI.wav": ["warm", "upright bass"]}))
    write(tmp_path / "song2" / "keys.wav", tone(440, 2.0))
    write(tmp_path / "song2" / "gtr.wav", tone(220, 2.0))
    (tmp_path / "song2" / "tags.txt").write_text("# comment\nkeys: rhodes, mellow\n")
    data = read_multitrack(tmp_path)
    assert data.layout == "folder" and not data.problems
    s1 = {s.name: s for s in data.songs[0].stems}
    assert set(s1) == {"Bass_DI", "lead vocal"}  # the mix is not a stem
    assert s1["Bass_DI"].tags == ("warm", "upright bass") and s1["Bass_DI"].role == "bass"
    assert s1["lead vocal"].is_vocal and not s1["Bass_DI"].is_vocal
    s2 = {s.name: s for s in data.songs[1].stems}
    assert s2["keys"].tags == ("rhodes", "mellow") and s2["gtr"].tags == ("gtr",)
    assert s2["gtr"].role == "guitar"


def test_corpus_layout_is_detected_from_its_index(tmp_path):
    song = tmp_path / "song_00000"
    for role in ("bass", "keys"):
        write(song / "stems" / f"{role}.flac", tone(100 if role == "bass" else 500, 2.0))
    meta = {"song_id": "song_00000", "stems": {r: {"file": f"stems/{r}.flac", "role": r, "tags": [r, "x"]}
                                              for r in ("bass", "keys")}}
    (song / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "corpus.json").write_text("{}")
    assert detect_layout(tmp_path) == "corpus"
    data = read_multitrack(tmp_path)
    assert [s.caption for s in data.songs[0].stems] == ["bass, x", "keys, x"]


def test_bad_inputs_get_messages_naming_the_file(tmp_path):
    good = tone(200, 2.0)
    write(tmp_path / "unreadable" / "a.wav", good)
    write(tmp_path / "unreadable" / "b.wav", good)
    (tmp_path / "unreadable" / "broken.wav").write_bytes(b"RIFF....not audio at all")
    write(tmp_path / "lengths" / "a.wav", tone(200, 2.0))
    write(tmp_path / "lengths" / "b.wav", tone(300, 5.0))
    write(tmp_path / "rates" / "a.wav", tone(200, 2.0))
    write(tmp_path / "rates" / "b.wav", tone(300, 2.0, 44100), 44100)
    write(tmp_path / "mono" / "a.wav", tone(200, 2.0, channels=1))
    write(tmp_path / "mono" / "b.wav", good)
    write(tmp_path / "multi" / "a.wav", tone(200, 2.0, channels=4))
    write(tmp_path / "multi" / "b.wav", good)
    write(tmp_path / "multi" / "c.wav", good)
    write(tmp_path / "silent" / "a.wav", np.zeros((96000, 2), np.float32))
    write(tmp_path / "silent" / "b.wav", good)
    write(tmp_path / "silent" / "c.wav", good)
    data = read_multitrack(tmp_path, layout="folder")
    msgs = _messages(data)

    def one(fragment, *words):
        hits = [m for m in msgs if fragment in m]
        assert hits, f"no message about {fragment}: {msgs}"
        assert all(w in hits[0] for w in words), hits[0]

    one("broken.wav", "not an audio file", "left out")
    one("lengths", "different lengths", "a.wav 2.00 s", "b.wav 5.00 s", "song left out")
    one("rates", "different sample rates", "b.wav 44100 Hz", "resampled")
    one("mono/a.wav", "mono", "warning")
    one("multi/a.wav", "4 channels", "left out")
    one("silent/a.wav", "silent stem")
    songs = {s.song_id: s for s in data.songs}
    assert set(songs) == {"unreadable", "rates", "mono", "multi", "silent"}
    assert [s.name for s in songs["multi"].stems] == ["b", "c"]
    assert [s.name for s in songs["silent"].stems] == ["b", "c"]
    assert songs["rates"].frames == 96000


def test_layout_errors_are_clear(tmp_path):
    with pytest.raises(LayoutError, match="not a folder"):
        read_multitrack(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no songs found"):
        read_multitrack(tmp_path / "empty")
    with pytest.raises(LayoutError, match="unknown layout"):
        read_multitrack(tmp_path, layout="stems")


def test_resampling_keeps_pitch_and_windowed_reads_match_full_reads(tmp_path):
    path = write(tmp_path / "x.wav", tone(1000, 3.0, 44100, amp=0.5), 44100)
    full = load_audio(path)
    assert full.shape == (2, 3 * 48000)
    spectrum = np.abs(np.fft.rfft(full[0, 48000:96000]))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second
    assert np.max(np.abs(full[:, 4800:-4800])) == pytest.approx(0.5, abs=0.01)
    window = load_audio(path, start=50000, frames=30000)
    assert np.max(np.abs(window - full[:, 50000:80000])) < 1e-3
    past_end = load_audio(path, start=3 * 48000 - 100, frames=1000)
    assert past_end.shape == (2, 1000) and np.all(past_end[:, 200:] == 0)


def test_mono_is_duplicated_and_multichannel_refused(tmp_path):
    mono = load_audio(write(tmp_path / "m.wav", tone(200, 1.0, channels=1)))
    assert mono.shape == (2, 48000) and np.array_equal(mono[0], mono[1])
    with pytest.raises(AudioFileError, match="m6.wav: has 6 channels"):
        load_audio(write(tmp_path / "m6.wav", tone(200, 1.0, channels=6)))
    with pytest.raises(AudioFileError, match="missing.wav: no such file"):
        audio_info(tmp_path / "missing.wav")


def test_block_levels_match_a_direct_computation(tmp_path):
    audio = np.random.default_rng(0).normal(0, 0.1, (48000, 2)).astype(np.float32)
    path = write(tmp_path / "n.wav", audio)
    levels = block_rms(path, block=4096)
    expected = [np.mean(audio[i:i + 4096].astype(np.float64) ** 2) for i in range(0, 48000, 4096)]
    assert np.allclose(levels, expected, rtol=1e-5)
    assert sf.info(str(path)).samplerate == 48000
