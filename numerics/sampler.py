"""The samplers, in numpy: the one implementation the engine, training and evaluation use.

- `sample_latents`: multistep consistency sampling of C-DiT latents with every control:
  classifier-free guidance with separate weights for context and CLAP (nested CFG, passes
  from numerics.guidance), variations of a previous take (`strength`), inpainting
  (`keep`), seamless loops (rolling), seeds. Latents are float32 (B, C, T); a step
  function maps the inputs of the exported step (export.dit_step) to (B, C, T): an
  onnxruntime session in the engine, or a torch network (models.sampling.step_function).
- `heun`: EDM's deterministic 2nd-order sampler for any denoiser D(x, sigma) (the CLAP
  bridge's embeddings).
- `slerp`: spherical interpolation of embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sideman.numerics.guidance import consistency_levels, guidance_passes

StepFn = Callable[[dict[str, np.ndarray]], np.ndarray]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SamplerSettings:
    """Sampling controls. `strength` in [0, 1]: 1 = fresh take, 0 = the take unchanged."""

    steps: int = 5
    w_context: float = 1.25
    w_clap: float = 1.25
    strength: float = 1.0
    loop: bool = False
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of embeddings (..., D); norms interpolate linearly."""
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(np.sum(ua * ub, axis=-1, keepdims=True), -1.0, 1.0))
    so = np.sin(omega)
    safe = so > 1e-6
    so = np.maximum(so, 1e-6)
    wa = np.where(safe, np.sin((1 - t) * omega) / so, 1 - t)
    wb = np.where(safe, np.sin(t * omega) / so, t)
    direction = wa * ua + wb * ub
    direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
    return (direction * ((1 - t) * na + t * nb)).astype(a.dtype)


def heun(denoise: Callable[[np.ndarray, float], np.ndarray], x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """EDM's Heun sampler (Karras et al. 2022, Algorithm 1 with S_churn = 0).

    denoise(x (B, ...), sigma) -> (B, ...); x: the state at noise level levels[0]; levels:
    (N,) decreasing positive noise levels (numerics.guidance.karras_levels). The last step
    goes to sigma = 0 by Euler (no correction): 2N - 1 denoiser calls. Returns x at sigma 0."""
    for i, sigma in enumerate(levels):
        d = (x - denoise(x, sigma)) / sigma
        nxt = levels[i + 1] if i + 1 < len(levels) else 0.0
        x_next = x + (nxt - sigma) * d
        if nxt > 0:
            d2 = (x_next - denoise(x_next, nxt)) / nxt
            x_next = x + (nxt - sigma) * 0.5 * (d + d2)
        x = x_next
    return x


class GuidedConsistency:
    """f(x, sigma) with guidance, as one call of the exported step function."""

    def __init__(self, step: StepFn, context: np.ndarray | None, clap: np.ndarray | None,
                 w_context: float, w_clap: float, latent_shape: tuple[int, int], clap_dim: int):
        passes = guidance_passes(w_context, w_clap, context is not None, clap is not None)
        self.step = step
        self.context = context
        self.clap = clap
        self.latent_shape = latent_shape
        self.clap_dim = clap_dim
        self.pass_context = np.array([float(p[1]) for p in passes], np.float32)
        self.pass_clap = np.array([float(p[2]) for p in passes], np.float32)
        self.pass_coef = np.array([p[0] for p in passes], np.float32)

    def __call__(self, x: np.ndarray, sigma: float, shift: int = 0) -> np.ndarray:
        b = x.shape[0]
        context = np.zeros_like(x) if self.context is None else np.roll(self.context, shift, -1)
        clap = np.zeros((b, self.clap_dim), np.float32) if self.clap is None else self.clap
        return self.step({"x": x.astype(np.float32), "sigma": np.full((b,), sigma, np.float32),
                          "context": context.astype(np.float32), "clap": clap.astype(np.float32),
                          "pass_context": self.pass_context, "pass_clap": self.pass_clap,
                          "pass_coef": self.pass_coef})


def sample_latents(f: GuidedConsistency, shape: tuple[int, int, int], settings: SamplerSettings,
                   rng: np.random.Generator, take: np.ndarray | None = None,
                   keep: np.ndarray | None = None, progress: Progress | None = None) -> np.ndarray:
    """Latents (B, C, T) by multistep consistency sampling with the controls in `settings`.

    take: (B, C, T) previous take, needed for variations (strength < 1) and inpainting.
    keep: (T,) or (B, T) bool, frames of `take` kept exactly.
    progress(step, total) is called after each step (it may raise to cancel).
    """
    s = settings
    if not 0.0 <= s.strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {s.strength}")
    if (keep is not None or s.strength < 1.0) and take is None:
        raise ValueError("variations and inpainting need a previous take")
    if take is not None and s.strength == 0.0:
        return take.copy()
    n = s.steps if s.strength == 1.0 else max(1, round(s.steps * s.strength))
    levels = consistency_levels(n, s.sigma_min, s.sigma_max, s.rho, s.strength)
    frames = shape[-1]
    z = rng.standard_normal(shape, dtype=np.float32)
    x = levels[0] * z if take is None else take + np.float32(levels[0]) * z
    keep_mask = None if keep is None else np.broadcast_to(keep.reshape(-1, 1, frames), shape).astype(bool)
    for k, sigma in enumerate(levels):
        shift = int(rng.integers(frames)) if s.loop else 0
        x0 = np.roll(f(np.roll(x, shift, -1), float(sigma), shift), -shift, -1)
        if keep_mask is not None:
            x0 = np.where(keep_mask, take, x0)
        if k + 1 < len(levels):
            noise = rng.standard_normal(shape, dtype=np.float32)
            x = x0 + np.float32(np.sqrt(max(levels[k + 1] ** 2 - s.sigma_min ** 2, 0.0))) * noise
        if progress is not None:
            progress(k + 1, len(levels))
    return x0.astype(np.float32)
