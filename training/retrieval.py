"""Text-to-audio retrieval metrics for CLAP embeddings: R@k and the rank of the first hit.

Each text query ranks every audio item by cosine similarity. Several audio items may be
relevant to one query (stems sharing a caption, or a class): the query's rank is the
position of its best-ranked relevant item, so R@k is the fraction of queries with any
relevant item among the top k. Ties count against the query: an irrelevant item scoring
exactly as high as the best relevant one is ranked above it, so constant embeddings
score as badly as they should.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np


def _unit_rows(x) -> np.ndarray:
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def relevance(text_labels: Sequence[Hashable], audio_labels: Sequence[Hashable]) -> np.ndarray:
    """(Q, N) bool: query q and audio item n carry the same label (caption, class, id)."""
    rel = [[q == a for a in audio_labels] for q in text_labels]
    return np.array(rel, dtype=bool).reshape(len(text_labels), len(audio_labels))


def first_hit_ranks(text_emb, audio_emb, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of the best-ranked relevant audio item for each query: (Q,) int.

    text_emb (Q, D), audio_emb (N, D): any norms (cosine similarity is used);
    relevant (Q, N) bool with at least one True per row.
    """
    relevant = np.asarray(relevant, dtype=bool)
    if not relevant.any(axis=1).all():
        raise ValueError("every query needs at least one relevant audio item")
    sim = _unit_rows(text_emb) @ _unit_rows(audio_emb).T
    best = np.where(relevant, sim, -np.inf).max(axis=1, keepdims=True)
    return 1 + ((sim >= best) & ~relevant).sum(axis=1)


def retrieval_metrics(text_emb, audio_emb, text_labels: Sequence[Hashable],
                      audio_labels: Sequence[Hashable], ks: Sequence[int] = (1, 10)) -> dict[str, float]:
    """{'R@1': ..., 'R@10': ..., 'mean_rank': ..., 'median_rank': ...} for text->audio retrieval.

    text_labels (Q,) and audio_labels (N,) say which items are relevant to which query;
    for paired data pass each pair's caption to both (one query per distinct caption).
    """
    ranks = first_hit_ranks(text_emb, audio_emb, relevance(text_labels, audio_labels))
    out = {f"R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["mean_rank"] = float(ranks.mean())
    out["median_rank"] = float(np.median(ranks))
    return out
