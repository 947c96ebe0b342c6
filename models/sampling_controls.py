"""Sampling-time controls: classifier-free guidance, variations, inpainting, loops, slerp.

Guidance with separate weights for the context and the CLAP condition (nested CFG):

    D = D(0, 0) + w_ctx (D(ctx, 0) - D(0, 0)) + w_clap (D(ctx, clap) - D(ctx, 0))
      = (1 - w_ctx) D(0, 0) + (w_ctx - w_clap) D(ctx, 0) + w_clap D(ctx, clap)

where ``0`` is a dropped condition. An absent condition (``None``) is dropped in every pass,
which gives the four settings of Table 1: ctx+CLAP, ctx only (``D(0,0) + w_ctx (D(ctx,0) -
D(0,0))``), CLAP only (``D(0,0) + w_clap (D(0,clap) - D(0,0))``) and unconditional.
Passes with a zero coefficient are skipped, the others run as ONE batched forward call:
with the default ``w_ctx = w_clap = 1.25`` that is the pair ``D(0,0), D(ctx,clap)``;
with both weights 1 it is the plain conditional output.

Every control is a wrapper around a denoiser ``D(x (B, C, T), sigma (B,)) -> (B, C, T)``
and so works with both samplers (EDM Heun and multistep consistency). A wrapper that holds
time-aligned data provides ``rolled(shift)``, used by loop sampling.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from sideman.models.consistency import ConsistencyPrecond, consistency_sample, consistency_sigmas
from sideman.models.edm import heun_sample, karras_sigmas
from sideman.numerics.guidance import guidance_passes

__all__ = ["CFGModel", "GuidedDenoiser", "InpaintDenoiser", "LoopDenoiser", "slerp",
           "tile_loop", "sample"]


class CFGModel(nn.Module):
    """Guided model ``(x, sigma, context, clap) -> (B, C, T)`` with all passes in one call.

    ``model`` is a preconditioned DiT (``EDMPrecond`` or ``ConsistencyPrecond``) taking
    ``(x, sigma, context=, clap=, context_mask=, clap_mask=)``.
    """

    def __init__(self, model: nn.Module, w_context: float = 1.25, w_clap: float = 1.25) -> None:
        super().__init__()
        self.model, self.w_context, self.w_clap = model, float(w_context), float(w_clap)

    def passes(self, has_context: bool, has_clap: bool) -> list[tuple[float, bool, bool]]:
        """Non-zero ``(coefficient, use_context, use_clap)`` terms of the nested CFG."""
        return guidance_passes(self.w_context, self.w_clap, has_context, has_clap)

    def forward(self, x: Tensor, sigma: Tensor, context: Tensor | None = None,
                clap: Tensor | None = None) -> Tensor:
        """``x (B, C, T)``, ``sigma (B,)``, ``context (B, C, T)|None``, ``clap (B, 512)|None``."""
        passes = self.passes(context is not None, clap is not None)
        n, b = len(passes), x.shape[0]
        rows = lambda flag: torch.tensor(flag, device=x.device).repeat_interleave(b)  # noqa: E731
        cond = {
            "context": None if context is None else context.repeat(n, 1, 1),
            "clap": None if clap is None else clap.repeat(n, 1),
            "context_mask": rows([not p[1] for p in passes]) if context is not None else None,
            "clap_mask": rows([not p[2] for p in passes]) if clap is not None else None,
        }
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(b)
        out = self.model(x.repeat(n, *([1] * (x.ndim - 1))), sigma.repeat(n), **cond)
        if n == 1 and passes[0][0] == 1.0:
            return out
        chunks = out.chunk(n)
        result = passes[0][0] * chunks[0]
        for (coef, _, _), chunk in zip(passes[1:], chunks[1:]):
            result = result + coef * chunk
        return result


class GuidedDenoiser:
    """A :class:`CFGModel` bound to its conditions: the sampler's ``D(x, sigma)``."""

    def __init__(self, cfg_model: CFGModel, context: Tensor | None, clap: Tensor | None) -> None:
        self.cfg_model, self.context, self.clap = cfg_model, context, clap

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.cfg_model(x, sigma, self.context, self.clap)

    def rolled(self, shift: int) -> "GuidedDenoiser":
        """The same denoiser with the context rolled by ``shift`` frames."""
        ctx = None if self.context is None else self.context.roll(shift, -1)
        return GuidedDenoiser(self.cfg_model, ctx, self.clap)


class InpaintDenoiser:
    """Keeps the frames of ``take`` where ``keep`` is true, regenerates the rest.

    The clean-data estimate is replaced by ``take`` on kept frames at every call, so the
    sampler's trajectory there is the take plus its own noise (Diff-A-Riff's inpainting).
    ``take (B, C, T)``; ``keep (B, T)`` or ``(T,)`` bool.
    """

    def __init__(self, denoiser: Callable[[Tensor, Tensor], Tensor], take: Tensor,
                 keep: Tensor) -> None:
        self.denoiser, self.take = denoiser, take
        self.keep = keep.reshape(-1, 1, keep.shape[-1]).bool()

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return torch.where(self.keep, self.take, self.denoiser(x, sigma))

    def rolled(self, shift: int) -> "InpaintDenoiser":
        inner = self.denoiser.rolled(shift) if hasattr(self.denoiser, "rolled") else self.denoiser
        return InpaintDenoiser(inner, self.take.roll(shift, -1), self.keep.roll(shift, -1))


class LoopDenoiser:
    """Makes the result loop seamlessly over its length ``T`` (rolling trick).

    Each call rolls the state (and any time-aligned condition) by a random shift, denoises
    and rolls back, so the seam between frame ``T-1`` and frame ``0`` sits at a different
    place every step and is treated like any other pair of neighbouring frames.
    """

    def __init__(self, denoiser: Callable[[Tensor, Tensor], Tensor],
                 generator: torch.Generator | None = None) -> None:
        self.denoiser, self.generator = denoiser, generator

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        device = self.generator.device if self.generator is not None else "cpu"
        shift = int(torch.randint(x.shape[-1], (), generator=self.generator, device=device))
        inner = self.denoiser.rolled(shift) if hasattr(self.denoiser, "rolled") else self.denoiser
        return inner(x.roll(shift, -1), sigma).roll(-shift, -1)


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between embeddings ``a, b (..., D)`` at ``t`` in [0, 1].

    Directions follow the great circle, norms are interpolated linearly (unit-norm CLAP
    embeddings stay unit-norm). Falls back to the normalised linear path when parallel.
    """
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    safe, so = so > 1e-6, so.clamp_min(1e-6)
    wa = torch.where(safe, torch.sin((1 - t) * omega) / so, torch.full_like(so, 1 - t))
    wb = torch.where(safe, torch.sin(t * omega) / so, torch.full_like(so, t))
    direction = wa * ua + wb * ub
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return direction * ((1 - t) * na + t * nb)


def tile_loop(x: Tensor, frames: int) -> Tensor:
    """Repeat a loop ``(B, C, L)`` along time to ``(B, C, frames)``."""
    reps = -(-frames // x.shape[-1])
    return x.repeat(1, 1, reps)[..., :frames]


@torch.no_grad()
def sample(model: nn.Module, frames: int, *, context: Tensor | None = None,
           clap: Tensor | None = None, batch: int | None = None, w_context: float = 1.25,
           w_clap: float = 1.25, steps: int | None = None, method: str | None = None,
           generator: torch.Generator | None = None, take: Tensor | None = None,
           strength: float = 1.0, keep: Tensor | None = None, loop: bool = False,
           sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """Generate latents ``(B, C, frames)`` with the DiT, with any combination of controls.

    Args:
        model: ``EDMPrecond`` (Heun, 30 steps by default) or ``ConsistencyPrecond``
            (multistep, 5 steps by default) around a DiT; ``method`` ('heun' or
            'consistency') overrides the choice.
        context: ``(B, C, frames)`` context latents or ``None``; clap: ``(B, 512)`` or ``None``.
        batch: batch size when neither condition is given (default 1).
        w_context, w_clap: guidance weights (see the module docstring).
        generator: ``torch.Generator`` on the model's device; a fixed seed reproduces a take.
        take: ``(B, C, frames)`` previous take, for variations and inpainting.
        strength: in [0, 1], how much of ``take`` is re-noised: 0 returns ``take``, 1 starts
            from ``sigma_max`` (a fresh take); in between starts at the Karras level with
            index ``strength`` and uses ``round(steps * strength)`` steps (at least 1).
        keep: ``(B, frames)`` or ``(frames,)`` bool, frames of ``take`` kept exactly.
        loop: make the result loop seamlessly over ``frames`` (see :func:`tile_loop`).
    """
    method = method or ("consistency" if isinstance(model, ConsistencyPrecond) else "heun")
    steps = steps or (5 if method == "consistency" else 30)
    if not 0.0 <= strength <= 1.0:
        raise ValueError("strength must be in [0, 1]")
    if keep is not None and take is None:
        raise ValueError("inpainting (keep) needs a take")
    ref = next(model.parameters())
    b = next((c.shape[0] for c in (context, clap, take) if c is not None), batch or 1)
    if take is not None and strength == 0.0:
        return take.clone()
    n = steps if strength == 1.0 else max(1, round(steps * strength))
    schedule = consistency_sigmas if method == "consistency" else karras_sigmas
    sigmas = schedule(n, sigma_min, sigma_max, rho, strength)
    channels = model.net.cfg.latent_channels
    z = torch.randn((b, channels, frames), device=ref.device, generator=generator)
    x = sigmas[0].item() * z if take is None else take + sigmas[0].item() * z
    denoise = GuidedDenoiser(CFGModel(model, w_context, w_clap), context, clap)
    if keep is not None:
        keep = keep.to(ref.device).reshape(-1, 1, frames).bool()
        denoise = InpaintDenoiser(denoise, take, keep)
    if loop:
        denoise = LoopDenoiser(denoise, generator)
    if method == "consistency":
        out = consistency_sample(denoise, x, sigmas, sigma_min, generator)
    else:
        out = heun_sample(denoise, x, sigmas)
    if keep is not None:
        out = torch.where(keep, take, out)
    return out
