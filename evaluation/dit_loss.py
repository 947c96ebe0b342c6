"""Held-out EDM loss of a DiT file on stored latent pairs: how well a DiT fits a codec's
latents (training.dit_validation computes it; `sideman dit-loss` prints it)."""
from __future__ import annotations

import os

from sideman.models.dit_checkpoint import load_dit
from sideman.models.edm import EDMPrecond
from sideman.training.dit_data import LatentPairs
from sideman.training.dit_validation import SIGMA_EDGES, edm_validation_loss

__all__ = ["SIGMA_EDGES", "held_out_edm_loss"]


def held_out_edm_loss(dit_file: str | os.PathLike, pairs_dir: str | os.PathLike, repeats: int = 4,
                      batch_size: int = 16, seed: int = 0) -> dict:
    """{"loss": mean, "sem": standard error, "pairs": n, "by_sigma": {"lo-hi": mean}} over
    `repeats` noise draws of every pair in pairs_dir."""
    model = load_dit(dit_file)
    if not isinstance(model, EDMPrecond):
        raise ValueError(f"{dit_file} is not an EDM DiT (consistency models have no EDM loss)")
    try:
        return edm_validation_loss(model, LatentPairs(pairs_dir), repeats, batch_size, seed)
    except ValueError as exc:
        raise ValueError(f"{pairs_dir}: {exc}") from exc
