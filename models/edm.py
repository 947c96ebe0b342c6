"""EDM (Karras et al. 2022) pieces, generic over the shape of the data.

Everything here works on tensors of shape ``(B, ...)``: DiT latents ``(B, 64, T)`` as well
as 512-d CLAP vectors ``(B, 512)`` for the bridge MLP. Noise levels ``sigma`` are standard
deviations in data units (latents are assumed to have std ``sigma_data`` = 0.5). Noise
schedules and samplers are in numerics.guidance and numerics.sampler, shared with the engine.

A *denoiser* is any callable ``D(x, sigma) -> x0_hat`` with ``x (B, ...)`` and
``sigma (B,)``; a *network* is ``net(x_in, c_noise, **cond) -> (B, ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from sideman.models.dit import ConditionDropout

__all__ = ["as_sigma", "EDMPrecond", "EDMLoss", "DiTEDMObjective", "Denoiser"]

Denoiser = Callable[[Tensor, Tensor], Tensor]


def as_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """Noise level(s) as a float32 ``(B,)`` tensor on ``x``'s device (scalars broadcast)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
    return sigma.expand(x.shape[0])


def _bcast(v: Tensor, x: Tensor) -> Tensor:
    """``(B,)`` -> ``(B, 1, ..., 1)`` matching ``x.ndim``."""
    return v.reshape(-1, *([1] * (x.ndim - 1)))


class EDMPrecond(nn.Module):
    """EDM preconditioning ``D(x, s) = c_skip x + c_out F(c_in x, ln(s)/4)``.

    ``c_skip = sd^2/(s^2+sd^2)``, ``c_out = s*sd/sqrt(s^2+sd^2)``, ``c_in = 1/sqrt(s^2+sd^2)``.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: Tensor, sigma: Tensor | float, **cond) -> Tensor:
        """``x (B, ...)`` noisy data at ``sigma (B,)`` -> denoised estimate ``(B, ...)``."""
        sigma = as_sigma(sigma, x)
        s, sd = _bcast(sigma, x), self.sigma_data
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1 / (s ** 2 + sd ** 2).sqrt()
        out = self.net((c_in * x).to(x.dtype), sigma.log() / 4, **cond)
        return (c_skip * x + c_out * out.float()).to(x.dtype)


@dataclass
class EDMLoss:
    """EDM training loss: ``ln s ~ N(p_mean, p_std^2)``, weight ``(s^2+sd^2)/(s*sd)^2``."""

    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_data: float = 0.5

    def sample_sigma(self, batch: int, device: torch.device | str,
                     generator: torch.Generator | None = None) -> Tensor:
        """``(batch,)`` training noise levels."""
        return (torch.randn(batch, device=device, generator=generator) * self.p_std
                + self.p_mean).exp()

    def __call__(self, denoiser: Callable[..., Tensor], x0: Tensor,
                 generator: torch.Generator | None = None, **cond) -> Tensor:
        """Per-example weighted squared error ``(B,)`` (mean over non-batch dims).

        ``denoiser(x, sigma, **cond)`` is typically an :class:`EDMPrecond`.
        """
        sigma = self.sample_sigma(x0.shape[0], x0.device, generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        s, sd = _bcast(sigma, x0), self.sigma_data
        weight = (s ** 2 + sd ** 2) / (s * sd) ** 2
        denoised = denoiser(x0 + s * noise, sigma, **cond).float()
        return (weight * (denoised - x0) ** 2).flatten(1).mean(1)


@dataclass
class DiTEDMObjective:
    """``loss_fn(model, batch) -> (loss, scalars)`` for :class:`sideman.training.trainer.Trainer`.

    ``model`` is an :class:`EDMPrecond` around a :class:`sideman.models.dit.DiT` (possibly
    DDP-wrapped). ``batch`` is a dict with ``target (B, C, T)``, optional
    ``context (B, C, T)`` and optional ``clap (B, 512)``. Context and CLAP are dropped
    independently per example (``dropout``) for classifier-free guidance.
    """

    loss: EDMLoss = field(default_factory=EDMLoss)
    dropout: ConditionDropout = field(default_factory=ConditionDropout)

    def __call__(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        x0 = batch["target"]
        ctx_mask, clap_mask = self.dropout.sample(x0.shape[0], x0.device)
        per_example = self.loss(model, x0, context=batch.get("context"),
                                clap=batch.get("clap"), context_mask=ctx_mask,
                                clap_mask=clap_mask)
        loss = per_example.mean()
        return loss, {"loss": loss.detach()}
