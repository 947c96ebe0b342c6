"""Guidance passes and noise levels as plain Python/numpy: the one definition used by the
training losses, the samplers (numerics.sampler) and the onnxruntime engine.

Nested classifier-free guidance with separate weights (see models.sampling):

    D = (1 - w_ctx) D(0, 0) + (w_ctx - w_clap) D(ctx, 0) + w_clap D(ctx, clap)

An absent condition is dropped in every pass; passes with the same conditions are merged
and passes with a zero coefficient are skipped.
"""
from __future__ import annotations

import numpy as np


def guidance_passes(w_context: float, w_clap: float, has_context: bool,
                    has_clap: bool) -> list[tuple[float, bool, bool]]:
    """Non-zero ``(coefficient, use_context, use_clap)`` terms, sorted by (context, clap)."""
    terms = [(1.0 - w_context, False, False),
             (w_context - w_clap, has_context, False),
             (w_clap, has_context, has_clap)]
    merged: dict[tuple[bool, bool], float] = {}
    for coef, ctx, clap in terms:
        merged[(ctx, clap)] = merged.get((ctx, clap), 0.0) + coef
    return [(c, k[0], k[1]) for k, c in sorted(merged.items()) if c != 0.0]


def karras_sigma_at(u, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
    """Karras noise level at a continuous index ``u`` in [0, 1]: ``u=0 -> sigma_min``,
    ``u=1 -> sigma_max``, ``sigma = (a + u (b - a))^rho`` with ``a = sigma_min^(1/rho)``,
    ``b = sigma_max^(1/rho)``. Numbers and arrays give float64 arrays; an array-like of
    another library (a torch tensor in the training losses) keeps its own type."""
    a, b = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    if isinstance(u, (int, float, list, tuple, np.ndarray, np.generic)):
        u = np.asarray(u, dtype=np.float64)
    return (a + u * (b - a)) ** rho


def consistency_levels(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                       rho: float = 7.0, strength: float = 1.0) -> np.ndarray:
    """``(steps,)`` float64 multistep consistency levels: Karras levels at indices
    ``linspace(strength, 0, steps + 1)[:-1]``."""
    return karras_sigma_at(np.linspace(strength, 0.0, steps + 1)[:-1], sigma_min, sigma_max, rho)


def karras_levels(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0, strength: float = 1.0) -> np.ndarray:
    """``(steps,)`` float64 EDM (Heun) levels from ``sigma_at(strength)`` down to ``sigma_min``."""
    u = np.array([strength]) if steps == 1 else np.linspace(strength, 0.0, steps)
    return karras_sigma_at(u, sigma_min, sigma_max, rho)
