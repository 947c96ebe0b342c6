"""Tests for sideman.evaluation.apa (Accompaniment Prompt Adherence)."""

import numpy as np
import pytest

from sideman.evaluation import apa as apa_mod
from sideman.numerics.loudness import integrated_loudness, normalize_loudness

SR = 48000


# --------------------------------------------------------------- the formula


@pytest.mark.parametrize(
    "d_y_x, d_y_xp, d_x_xp, expected",
    [
        (0.0, 2.0, 2.0, 1.0),   # Y = X
        (2.0, 0.0, 2.0, 0.0),   # Y = X'
        (1.0, 1.0, 2.0, 0.5),   # equally far
        (0.5, 1.5, 2.0, 0.75),
        (0.0, 5.0, 1.0, 1.0),   # triangle inequality broken: capped
        (5.0, 0.0, 1.0, 0.0),
        (-1e-9, 2.0, 2.0, 1.0),  # round-off negatives clamp to 0
    ],
)
def test_apa_from_distances(d_y_x, d_y_xp, d_x_xp, expected):
    assert apa_mod.apa_from_distances(d_y_x, d_y_xp, d_x_xp) == pytest.approx(expected)


def test_degenerate_case():
    assert apa_mod.apa_from_distances(0.0, 0.0, 0.0) == 0.5
    assert apa_mod.apa_from_distances(3.0, 3.0, 0.0, degenerate=0.0) == 0.0


def test_apa_from_embeddings_reference_anti_reference_and_mixture():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6))
    xp = rng.standard_normal((400, 6)) @ np.diag([2.0, 1, 1, 1, 1, 0.5]) + 1.0
    assert apa_mod.apa_from_embeddings(x, xp, x).apa == pytest.approx(1.0, abs=1e-9)
    assert apa_mod.apa_from_embeddings(x, xp, xp).apa == pytest.approx(0.0, abs=1e-9)
    mixture = np.concatenate([x[:200], xp[200:]])
    result = apa_mod.apa_from_embeddings(x, xp, mixture)
    assert 0.1 < result.apa < 0.9
    assert result.d_x_xp > 0.0


# ---------------------------------------------------------------- the mixes


def noise(rng, seconds=0.8, channels=2, amp=0.1):
    return amp * rng.standard_normal((channels, int(SR * seconds)))


def test_build_mix_level_and_invariances():
    rng = np.random.default_rng(1)
    ctx, stem = noise(rng), noise(rng, amp=0.01)
    mix = apa_mod.build_mix(ctx, stem, SR)
    assert mix.shape == ctx.shape
    assert integrated_loudness(mix, SR) == pytest.approx(-20.0, abs=0.05)
    # Loudness matching makes the mix independent of both input levels.
    np.testing.assert_allclose(apa_mod.build_mix(ctx, 30.0 * stem, SR), mix, atol=1e-9)
    np.testing.assert_allclose(apa_mod.build_mix(0.1 * ctx, stem, SR), mix, atol=1e-9)
    # A scaled copy of the context is matched back to it: mix = 2 ctx, normalised.
    expected = normalize_loudness(ctx, SR, -20.0)
    np.testing.assert_allclose(apa_mod.build_mix(ctx, 0.1 * ctx, SR), expected, atol=1e-9)


def test_build_mix_mono_stem_and_silence():
    rng = np.random.default_rng(2)
    ctx, stem = noise(rng), noise(rng, channels=1)[0]
    assert apa_mod.build_mix(ctx, stem, SR).shape == (2, ctx.shape[1])
    silent = np.zeros_like(ctx)
    np.testing.assert_allclose(apa_mod.build_mix(ctx, silent, SR), normalize_loudness(ctx, SR, -20.0))
    both_silent = apa_mod.build_mix(silent, silent, SR)
    assert not np.any(both_silent) and np.all(np.isfinite(both_silent))
    with pytest.raises(ValueError):
        apa_mod.build_mix(ctx, stem[:-1], SR)


# ------------------------------------------------------------ anti-reference


@pytest.mark.parametrize("song_ids", [list(range(7)), [0, 0, 0, 1, 1, 2, 2, 3, 3, 3], ["a", "b"] * 5])
def test_anti_reference_pairs_are_cross_song_permutations(song_ids):
    ids = np.asarray(song_ids)
    for seed in range(5):
        perm = apa_mod.anti_reference_pairs(song_ids, np.random.default_rng(seed))
        assert sorted(perm.tolist()) == list(range(len(ids)))
        assert np.all(ids[perm] != ids)


def test_anti_reference_pairs_seeded_and_random():
    ids = list(range(8))
    a = apa_mod.anti_reference_pairs(ids, np.random.default_rng(3))
    b = apa_mod.anti_reference_pairs(ids, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    draws = {tuple(apa_mod.anti_reference_pairs(ids, np.random.default_rng(s))) for s in range(40)}
    assert len(draws) > 20


def test_anti_reference_pairs_impossible():
    with pytest.raises(ValueError):
        apa_mod.anti_reference_pairs([0, 0, 0, 1], np.random.default_rng(0))
    with pytest.raises(ValueError):
        apa_mod.anti_reference_pairs([5], np.random.default_rng(0))


# ------------------------------------------------------------------ driver


def toy_embed(mixes):
    """Log energy in 6 bands of the mono downmix: a stand-in for CLAP, (B, 6)."""
    out = []
    for mix in mixes:
        spec = np.abs(np.fft.rfft(mix.mean(axis=0))) ** 2
        freqs = np.fft.rfftfreq(mix.shape[1], 1.0 / SR)
        edges = [0, 150, 300, 600, 1200, 2400, SR / 2]
        bands = [(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges, edges[1:])]
        out.append([np.log(spec[band].sum() + 1e-12) for band in bands])
    return np.array(out)


def toy_dataset(n_songs=8, per_song=3, seconds=0.5):
    rng = np.random.default_rng(4)
    t = np.arange(int(SR * seconds)) / SR
    contexts, stems, songs = [], [], []
    for song in range(n_songs):
        f = 100.0 * 1.3 ** song
        for _ in range(per_song):
            amp = rng.uniform(0.2, 0.5, size=(2, 1))
            contexts.append(amp * np.sin(2 * np.pi * f * t) + 0.001 * rng.standard_normal((2, t.size)))
            stems.append(amp[::-1] * np.sin(2 * np.pi * 2.0 * f * t + rng.uniform(0, 6)))
            songs.append(song)
    return contexts, stems, songs


def test_apa_driver_real_is_one_anti_is_zero():
    contexts, stems, songs = toy_dataset()
    calls = []

    def embed(mixes):
        calls.append(len(mixes))
        return toy_embed(mixes)

    real = apa_mod.apa(contexts, stems, stems, songs, embed, sr=SR, seed=7, chunk=10)
    assert real.apa == pytest.approx(1.0, abs=1e-9)
    assert real.d_x_xp > 0.0 and max(calls) <= 10 and sum(calls) == 3 * len(stems)
    perm = apa_mod.anti_reference_pairs(songs, np.random.default_rng(7))
    anti = apa_mod.apa(contexts, stems, [stems[j] for j in perm], songs, toy_embed, sr=SR, seed=7)
    assert anti.apa == pytest.approx(0.0, abs=1e-9)
