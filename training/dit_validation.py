"""Held-out EDM loss of a DiT on stored latent pairs, with every condition kept.

The loss is the training objective's (models.edm.EDMLoss: noise levels ln s ~ N(-1.2, 1.2^2),
weight (s^2 + sd^2) / (s sd)^2, squared error averaged over channels and frames) on pairs the
DiT never saw, with noise drawn from a fixed seed: two DiTs evaluated on the same pairs see
the same noise levels. Latents are scaled as in training (LatentPairs: RMS 0.5), so codecs of
different sizes compare in one unit. train_dit logs it during training (val.csv);
evaluation.dit_loss reports it for a DiT file.
"""
from __future__ import annotations

import numpy as np
import torch

from sideman.models.edm import EDMLoss, EDMPrecond
from sideman.training.dit_data import LatentPairs

SIGMA_EDGES = (0.0, 0.1, 0.3, 1.0, 3.0, float("inf"))  # noise-level bins of the report


@torch.no_grad()
def edm_validation_loss(model: EDMPrecond, data: LatentPairs, repeats: int = 4, batch_size: int = 16,
                        seed: int = 0) -> dict:
    """{"loss": mean, "sem": standard error, "pairs": n, "repeats", "by_sigma": {"lo-hi": mean}}
    of `model` over `repeats` noise draws of every pair of `data`."""
    if data.channels != model.net.cfg.latent_channels:
        raise ValueError(f"the pairs hold {data.channels}-channel latents; the DiT takes "
                         f"{model.net.cfg.latent_channels}")
    was_training = model.training
    model.eval()
    loss_fn = EDMLoss(sigma_data=model.sigma_data)
    generator = torch.Generator().manual_seed(seed)
    losses, sigmas = [], []
    for _ in range(repeats):
        for start in range(0, len(data), batch_size):
            items = [data[i] for i in range(start, min(len(data), start + batch_size))]
            x0 = torch.stack([it["target"] for it in items])
            ctx = torch.stack([it["context"] for it in items])
            clap = torch.stack([it["clap"] for it in items])
            keep = torch.ones(len(items), dtype=torch.bool)
            state = generator.get_state()
            sigma = loss_fn.sample_sigma(len(items), "cpu", generator)
            generator.set_state(state)  # the loss draws the same sigmas again, then its noise
            per_example = loss_fn(model, x0, generator=generator, context=ctx, clap=clap,
                                  context_mask=keep, clap_mask=keep)
            losses.append(per_example.float().numpy())
            sigmas.append(sigma.numpy())
    model.train(was_training)
    loss, sigma = np.concatenate(losses), np.concatenate(sigmas)
    by_sigma = {f"{lo:g}-{hi:g}": float(loss[(sigma >= lo) & (sigma < hi)].mean())
                for lo, hi in zip(SIGMA_EDGES[:-1], SIGMA_EDGES[1:]) if np.any((sigma >= lo) & (sigma < hi))}
    sem = float(loss.std(ddof=1) / np.sqrt(len(loss))) if len(loss) > 1 else 0.0
    return {"loss": float(loss.mean()), "sem": sem, "pairs": len(data), "repeats": repeats,
            "by_sigma": by_sigma}
