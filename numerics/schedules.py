"""Schedules as pure functions of the optimisation step (0-based, the step being taken).

All functions are deterministic and stateless, so a resumed run reproduces them exactly.
"""
from __future__ import annotations

import math

__all__ = ["warmup_cosine", "exponential_decay", "ema_decay"]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier in [0, 1]: linear warm-up then cosine decay to 0.

    ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (so the first update already
    moves), then ``0.5 (1 + cos(pi p))`` with ``p = (step - warmup) / (total - warmup)``,
    which is 1 at the end of warm-up and 0 at ``step = total_steps`` (and after).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 0.0 if step >= total_steps else 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def exponential_decay(step: int, total_steps: int, start: float, end: float) -> float:
    """Geometric interpolation ``start * (end/start)^(step/total)``, held at ``end`` after.

    Used for the consistency step in index space (0.1 -> 0.001 over training).
    """
    progress = min(1.0, max(0.0, step / max(1, total_steps)))
    return start * (end / start) ** progress


def ema_decay(step: int, max_decay: float) -> float:
    """EMA decay with a short warm-up: ``min(max_decay, (1 + step) / (10 + step))``."""
    return min(max_decay, (1.0 + step) / (10.0 + step))
