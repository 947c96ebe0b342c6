"""Symmetric contrastive (InfoNCE) loss with a learnable temperature, as CLIP and CLAP train.

For a batch of B paired, L2-normalised embeddings a_i (audio) and t_i (text), the logits
are s * a_i . t_j with s = 1 / temperature. The loss is the mean of the audio->text and
text->audio cross-entropies. With perfectly aligned, mutually orthogonal pairs it equals
log(1 + (B - 1) * exp(-s)).

Tag captions repeat ("electric bass, low, ..." can caption many stems), so pairs in one
batch may share a caption. Pass `groups` (one id per pair, equal ids for equal captions)
and every pair of a group counts as a positive, with the target mass spread evenly over
them, instead of pushing identical captions apart.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(a: torch.Tensor, t: torch.Tensor, scale: torch.Tensor | float,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of (B, D) audio and (B, D) text embeddings (unit rows), a scalar.

    scale: 1 / temperature. groups: (B,) integer ids; rows with equal ids are positives.
    """
    logits = scale * (a @ t.T)
    if groups is None:
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    same = (groups[:, None] == groups[None, :]).to(logits.dtype)
    target = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class ContrastiveLoss(nn.Module):
    """`info_nce` with a learnable temperature.

    The parameter is log(1 / temperature), initialised at `temperature` (0.07 as in CLIP)
    and capped so that 1 / temperature never exceeds `max_scale` (100).
    """

    def __init__(self, temperature: float = 0.07, max_scale: float = 100.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_scale = max_scale

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)

    @property
    def temperature(self) -> float:
        return float(1.0 / self.scale.detach())

    def forward(self, a: torch.Tensor, t: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        return info_nce(a, t, self.scale, groups)
