"""`sideman corpus render --songs 4 --seconds 20`: real FluidSynth stems, checked as audio."""
import itertools
import json

import numpy as np
import pytest
import soundfile as sf

from conftest import needs_fluidsynth
from sideman.data import corpus as corpus_mod
from sideman.data.instruments import ROLES

pytestmark = needs_fluidsynth


def _band_spectrum(audio: np.ndarray, sr: int = 48000) -> tuple[np.ndarray, float]:
    """Third-octave band energies in dB (normalised) and the spectral centroid in Hz."""
    mono = audio.mean(axis=1)
    frames = mono[: len(mono) // 4800 * 4800].reshape(-1, 4800) * np.hanning(4800)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(4800, 1 / sr)
    edges = 50 * 2 ** np.arange(0, 9.0, 1 / 3)
    bands = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    return 10 * np.log10(bands / bands.sum() + 1e-12), float((power * freqs).sum() / power.sum())


def _songs(root):
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_four_songs_with_a_stem_per_role_and_index(rendered_corpus):
    songs = _songs(rendered_corpus)
    assert [p.name for p in songs] == [f"song_{i:05d}" for i in range(4)]
    index = json.loads((rendered_corpus / "corpus.json").read_text())
    assert index["songs"] == [p.name for p in songs] and index["seed"] == 7
    for song in songs:
        meta = json.loads((song / "metadata.json").read_text())
        assert set(meta["stems"]) == set(ROLES)
        assert (song / "song.mid").stat().st_size > 100
        for stem in meta["stems"].values():
            assert stem["tags"][0] == stem["instrument"] and stem["caption"].startswith(stem["instrument"])
    assert not list(rendered_corpus.glob(".*")), "temporary folders left behind"


def test_stems_are_48k_stereo_20s_with_energy_and_sum_to_the_mix(rendered_corpus):
    for song in _songs(rendered_corpus):
        mix, sr = sf.read(song / "mix.flac", dtype="float64")
        assert sr == 48000 and mix.shape == (20 * 48000, 2)
        total = np.zeros_like(mix)
        for role in ROLES:
            audio, sr = sf.read(song / "stems" / f"{role}.flac", dtype="float64")
            assert sr == 48000 and audio.shape == (20 * 48000, 2), role
            rms_db = 10 * np.log10(np.mean(audio ** 2))
            assert rms_db > -50, f"{song.name}/{role} is nearly silent ({rms_db:.1f} dBFS)"
            total += audio
        assert np.abs(total - mix).max() < 1e-4  # 24-bit quantisation of 7 files
        assert 0.5 < np.abs(mix).max() <= 10 ** (-1 / 20) + 1e-4
        side = mix[:, 0] - mix[:, 1]
        assert np.mean(side ** 2) > 1e-6, "the mix should be stereo, not dual mono"


def test_roles_sound_distinct(rendered_corpus):
    for song in _songs(rendered_corpus):
        spectra = {r: _band_spectrum(sf.read(song / "stems" / f"{r}.flac")[0]) for r in ROLES}
        for a, b in itertools.combinations(ROLES, 2):
            distance = np.sqrt(np.mean((spectra[a][0] - spectra[b][0]) ** 2))
            assert distance > 3.0, f"{song.name}: {a} and {b} have near-identical spectra"
        centroids = {r: c for r, (_, c) in spectra.items()}
        assert min(centroids, key=centroids.get) == "bass", centroids


def test_rendering_is_deterministic_and_resumes(rendered_corpus, tmp_path):
    report = corpus_mod.render_corpus(1, 20, 7, tmp_path, progress=False)
    assert report.rendered == ["song_00000"]
    for role in ("bass", "drums"):
        a = sf.read(tmp_path / "song_00000" / "stems" / f"{role}.flac")[0]
        b = sf.read(rendered_corpus / "song_00000" / "stems" / f"{role}.flac")[0]
        assert np.array_equal(a, b)
    again = corpus_mod.render_corpus(1, 20, 7, tmp_path, progress=False)
    assert again.skipped == ["song_00000"] and not again.rendered


def test_a_failing_song_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    real = corpus_mod.render_midi
    calls = {"n": 0}

    def flaky(midi, *args, **kwargs):
        calls["n"] += 1
        if "song_00001" in str(midi.parent) and "lead" in midi.name:
            raise corpus_mod.RenderError("synthetic failure")
        return real(midi, *args, **kwargs)

    monkeypatch.setattr(corpus_mod, "render_midi", flaky)
    report = corpus_mod.render_corpus(2, 5, 3, tmp_path, jobs=1, progress=False)
    assert report.rendered == ["song_00000"]
    assert "synthetic failure" in report.failed["song_00001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.json", "song_00000"]
    assert json.loads((tmp_path / "corpus.json").read_text())["songs"] == ["song_00000"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        corpus_mod.render_corpus(0, 10, 0, tmp_path)
    with pytest.raises(corpus_mod.RenderError, match="soundfont not found"):
        corpus_mod.render_corpus(1, 10, 0, tmp_path, soundfont=tmp_path / "missing.sf2")


def test_parts_that_only_start_after_the_end_are_left_out(tmp_path):
    """Seed 4242's second song saves its drums and guitar for later sections; rendered for
    12 s it has four stems, each sounding, and still sums to its mix."""
    report = corpus_mod.render_corpus(2, 12, 4242, tmp_path, jobs=1, progress=False)
    assert report.failed == {} and report.rendered == ["song_00000", "song_00001"]
    meta = json.loads((tmp_path / "song_00001" / "metadata.json").read_text())
    assert set(meta["stems"]) == {"bass", "keys", "pads", "lead"}
    stems = [sf.read(tmp_path / "song_00001" / s["file"])[0] for s in meta["stems"].values()]
    assert all(np.sqrt(np.mean(a ** 2)) > 1e-3 for a in stems)
    mix, _ = sf.read(tmp_path / "song_00001" / "mix.flac")
    assert np.abs(sum(stems) - mix).max() < 1e-4
    assert len(json.loads((tmp_path / "song_00000" / "metadata.json").read_text())["stems"]) == 6
