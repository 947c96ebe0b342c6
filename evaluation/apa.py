"""Accompaniment Prompt Adherence (APA), as in design.md and SonyCSLParis/audio-metrics.

    APA = 1/2 + (d(Y, X') - d(Y, X)) / (2 max(d(X, X'), |d(Y, X') - d(Y, X)|))

with d the squared Fréchet distance between embedding sets of *mixes*:

- X : each context mixed with its real stem (the reference),
- X': each context mixed with a stem from another song (the anti-reference;
  a derangement by song id, so no context gets a stem of its own song),
- Y : each context mixed with its generated stem.

APA is 1 when Y is as close to X as X itself (Y = X), 0 when as close to X' as X'
itself (Y = X'), 1/2 when equally far from both; the max() in the denominator
keeps it in [0, 1] when the distances break the triangle inequality.

Degenerate case: d(X, X') == 0 and d(Y, X') == d(Y, X) (numerator 0, so the
denominator is 0): the real and the random pairings cannot be told apart, and Y
is equally far from both. We return 1/2, the value APA takes everywhere else on
numerator = 0; audio-metrics returns 0.0 there (pass ``degenerate=0.0``).

Mixes: the stem is loudness-matched (BS.1770) to its context, added, and the sum
normalised to -20 LUFS. Audio is channels-first (C, N) float (stereo 48 kHz
for CLAP-style embedders) or mono (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from sideman.evaluation.distribution_metrics import fad
from sideman.numerics.loudness import match_loudness, normalize_loudness

MIX_TARGET_LUFS = -20.0
EmbedFn = Callable[[list], np.ndarray]


def apa_from_distances(d_y_x: float, d_y_xp: float, d_x_xp: float, degenerate: float = 0.5) -> float:
    """APA from the three squared Fréchet distances (negative inputs clamped to 0).

    d_y_x = d(Y, X), d_y_xp = d(Y, X'), d_x_xp = d(X, X'). Returns a value in
    [0, 1]; ``degenerate`` when numerator and d(X, X') are both 0.
    """
    d_y_x, d_y_xp, d_x_xp = (max(float(v), 0.0) for v in (d_y_x, d_y_xp, d_x_xp))
    numerator = d_y_xp - d_y_x
    denominator = max(d_x_xp, abs(numerator))
    if denominator == 0.0:
        return float(degenerate)
    return 0.5 + numerator / (2.0 * denominator)


@dataclass(frozen=True)
class APAResult:
    """APA and the distances it came from (squared Fréchet distances)."""

    apa: float
    d_y_x: float
    d_y_xp: float
    d_x_xp: float


def apa_from_embeddings(emb_x, emb_xp, emb_y, degenerate: float = 0.5) -> APAResult:
    """APA from mix embeddings: X (N1, D) reference, X' (N2, D) anti-reference, Y (N3, D)."""
    d_y_x, d_y_xp, d_x_xp = fad(emb_y, emb_x), fad(emb_y, emb_xp), fad(emb_x, emb_xp)
    return APAResult(apa_from_distances(d_y_x, d_y_xp, d_x_xp, degenerate), d_y_x, d_y_xp, d_x_xp)


def _channels_first(audio) -> np.ndarray:
    """(N,) -> (1, N); (C, N) kept."""
    x = np.asarray(audio)
    return x[None, :] if x.ndim == 1 else x


def build_mix(context, stem, sr: float, target_lufs: float = MIX_TARGET_LUFS) -> np.ndarray:
    """Mix a stem into its context: stem loudness-matched to the context, sum at -20 LUFS.

    context, stem: (C, N) or (N,) float at ``sr`` Hz, same length; a mono one is
    broadcast to the other's channels. Returns (C, N) float64, no limiting (peaks
    may exceed 1). A silent context leaves the stem's level as it is; a silent
    mix stays silent.
    """
    ctx = _channels_first(np.asarray(context, dtype=np.float64))
    st = _channels_first(np.asarray(stem, dtype=np.float64))
    if ctx.shape[-1] != st.shape[-1]:
        raise ValueError(f"context and stem lengths differ: {ctx.shape[-1]} vs {st.shape[-1]}")
    if ctx.shape[0] != st.shape[0] and 1 not in (ctx.shape[0], st.shape[0]):
        raise ValueError(f"channel counts differ: {ctx.shape[0]} vs {st.shape[0]}")
    mix = ctx + match_loudness(st, ctx, sr)
    return normalize_loudness(mix, sr, target_lufs)


def anti_reference_pairs(song_ids: Sequence, rng: np.random.Generator, sweeps: int = 5) -> np.ndarray:
    """A random permutation ``perm`` with ``song_ids[perm[i]] != song_ids[i]`` for all i.

    X'_i pairs context i with stem ``perm[i]``. Built by a cyclic shift of the
    items grouped by song (valid whenever no song holds more than half of the
    items), then randomised by ``sweeps * N`` random transpositions that keep it
    valid (a Markov chain whose stationary law is uniform over valid
    permutations). Returns an int array (N,). Raises ValueError if impossible.
    """
    _, groups = np.unique(np.asarray(song_ids), return_inverse=True)
    groups = groups.ravel()
    n = len(groups)
    largest = np.bincount(groups).max() if n else 0
    if n < 2 or 2 * largest > n:
        raise ValueError(f"no derangement by song: {n} items, largest song has {largest}")
    order = _grouped_order(groups, rng)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = order[(np.arange(n) + largest) % n]
    _shuffle_valid(perm, groups, rng, sweeps * n)
    return perm


def _grouped_order(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Item indices with each group contiguous, groups and members in random order."""
    relabel = rng.permutation(groups.max() + 1)[groups]
    jitter = rng.permutation(len(groups))
    return np.lexsort((jitter, relabel))


def _shuffle_valid(perm: np.ndarray, groups: np.ndarray, rng: np.random.Generator, steps: int) -> None:
    """In place: swap perm[i], perm[j] at random whenever both stay cross-song."""
    pairs = rng.integers(0, len(perm), size=(steps, 2))
    for i, j in pairs:
        if groups[perm[j]] != groups[i] and groups[perm[i]] != groups[j]:
            perm[i], perm[j] = perm[j], perm[i]


def _embed_mixes(mixes: Callable[[int], np.ndarray], n: int, embed_fn: EmbedFn, chunk: int) -> np.ndarray:
    """Embed mixes 0..n-1 in chunks of ``chunk``; returns (n, D)."""
    parts = []
    for start in range(0, n, chunk):
        batch = [mixes(i) for i in range(start, min(start + chunk, n))]
        parts.append(np.asarray(embed_fn(batch), dtype=np.float64))
    return np.concatenate(parts, axis=0)


def apa(contexts: Sequence, real_stems: Sequence, generated_stems: Sequence, song_ids: Sequence,
        embed_fn: EmbedFn, sr: float = 48000, seed: int = 0, chunk: int = 64,
        target_lufs: float = MIX_TARGET_LUFS, degenerate: float = 0.5) -> APAResult:
    """APA of generated stems, end to end.

    contexts, real_stems, generated_stems: length-N sequences of (C, L) arrays at
    ``sr`` Hz (item i: context, its real stem, the stem generated for it);
    song_ids: length N, the song of each item. embed_fn maps a list of up to
    ``chunk`` mixes ((C, L) float64 arrays) to a (batch, D) array. The
    anti-reference is ``anti_reference_pairs(song_ids, np.random.default_rng(seed))``.
    """
    n = len(contexts)
    if not n == len(real_stems) == len(generated_stems) == len(song_ids):
        raise ValueError("contexts, stems and song_ids must have the same length")
    perm = anti_reference_pairs(song_ids, np.random.default_rng(seed))

    def mixer(stems, index):
        return lambda i: build_mix(contexts[i], stems[index[i]], sr, target_lufs)

    identity = np.arange(n)
    emb_x = _embed_mixes(mixer(real_stems, identity), n, embed_fn, chunk)
    emb_xp = _embed_mixes(mixer(real_stems, perm), n, embed_fn, chunk)
    emb_y = _embed_mixes(mixer(generated_stems, identity), n, embed_fn, chunk)
    return apa_from_embeddings(emb_x, emb_xp, emb_y, degenerate)
