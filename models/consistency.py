"""Consistency models over the same network as EDM (ECT-style training from EDM weights).

Shapes are generic ``(B, ...)``; noise levels ``sigma`` are ``(B,)`` stds in data units.
The consistency function ``f(x, s) = c_skip(s) x + c_out(s) F(c_in(s) x, ln(s)/4)`` uses
the boundary scalings ``c_skip = sd^2/((s-smin)^2+sd^2)``,
``c_out = sd (s-smin)/sqrt(s^2+sd^2)``, so ``f(x, smin) = x`` exactly. For
``s >> smin`` these equal the EDM scalings, which is why an EDM checkpoint is a good start.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from sideman.numerics.schedules import exponential_decay
from sideman.models.dit import ConditionDropout
from sideman.models.edm import EDMPrecond, _bcast, as_sigma
from sideman.numerics.guidance import karras_sigma_at

__all__ = ["ConsistencyPrecond", "pseudo_huber", "ConsistencyLoss", "DiTConsistencyObjective"]


class ConsistencyPrecond(nn.Module):
    """Consistency parameterisation of ``net``; boundary condition at ``sigma_min``."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002) -> None:
        super().__init__()
        self.net, self.sigma_data, self.sigma_min = net, sigma_data, sigma_min

    @classmethod
    def from_edm(cls, edm: EDMPrecond, sigma_min: float = 0.002) -> "ConsistencyPrecond":
        """A consistency model initialised with a copy of an EDM model's network."""
        return cls(copy.deepcopy(edm.net), edm.sigma_data, sigma_min)

    def forward(self, x: Tensor, sigma: Tensor | float, **cond) -> Tensor:
        """``x (B, ...)`` at ``sigma (B,)`` -> clean-data estimate ``f(x, sigma)``, ``(B, ...)``."""
        sigma = as_sigma(sigma, x)
        s, sd, smin = _bcast(sigma, x), self.sigma_data, self.sigma_min
        c_skip = sd ** 2 / ((s - smin) ** 2 + sd ** 2)
        c_out = sd * (s - smin) / (s ** 2 + sd ** 2).sqrt()
        c_in = 1 / (s ** 2 + sd ** 2).sqrt()
        out = self.net((c_in * x).to(x.dtype), sigma.log() / 4, **cond)
        return (c_skip * x + c_out * out.float()).to(x.dtype)


def pseudo_huber(a: Tensor, b: Tensor, c: float | None = None) -> Tensor:
    """Per-example pseudo-Huber distance ``sqrt(||a-b||^2 + c^2) - c``, ``(B,)``.

    ``c`` defaults to ``0.00054 sqrt(d)`` with ``d`` the number of elements per example.
    """
    diff = (a.float() - b.float()).flatten(1)
    if c is None:
        c = 0.00054 * math.sqrt(diff.shape[1])
    return (diff.square().sum(1) + c ** 2).sqrt() - c


@dataclass
class ConsistencyLoss:
    """Consistency training with continuous noise levels (ECT / Music2Latent style).

    A continuous index ``u ~ U(0, 1)`` maps to ``sigma = karras_sigma_at(u)``; the teacher
    sits at ``u' = max(u - du, 0)`` where the index step ``du`` shrinks exponentially from
    ``step_start`` to ``step_end`` over ``total_steps``. The teacher is the same model under
    stop-gradient, both see the same noise ``z``; the loss is
    ``pseudo_huber(f(x0 + s z, s), sg f(x0 + s' z, s')) / (s - s')``.
    """

    total_steps: int
    step_start: float = 0.1
    step_end: float = 0.001
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def index_step(self, step: int) -> float:
        """Index-space step ``du`` at training step ``step``."""
        return exponential_decay(step, self.total_steps, self.step_start, self.step_end)

    def sigma_pair(self, batch: int, step: int, device: torch.device | str,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(sigma, sigma_teacher)``, each ``(batch,)``, ``sigma > sigma_teacher >= sigma_min``."""
        du = self.index_step(step)
        u = du + (1 - du) * torch.rand(batch, device=device, generator=generator)
        u_teacher = (u - du).clamp(min=0.0)
        at = lambda v: karras_sigma_at(v, self.sigma_min, self.sigma_max, self.rho)  # noqa: E731
        return at(u), at(u_teacher)

    def __call__(self, model: Callable[..., Tensor], x0: Tensor, step: int,
                 generator: torch.Generator | None = None, **cond) -> Tensor:
        """Per-example weighted distance ``(B,)``; ``model(x, sigma, **cond)`` is a
        :class:`ConsistencyPrecond` (possibly DDP-wrapped)."""
        sigma, sigma_t = self.sigma_pair(x0.shape[0], step, x0.device, generator)
        z = torch.randn(x0.shape, device=x0.device, generator=generator)
        with torch.no_grad():
            teacher = model(x0 + _bcast(sigma_t, x0) * z, sigma_t, **cond)
        student = model(x0 + _bcast(sigma, x0) * z, sigma, **cond)
        return pseudo_huber(student, teacher) / (sigma - sigma_t)


@dataclass
class DiTConsistencyObjective:
    """``loss_fn(model, batch)`` for the trainer: consistency training of a DiT.

    ``model`` is a :class:`ConsistencyPrecond` (start it with ``ConsistencyPrecond.from_edm``
    or by loading EDM weights into its ``net``). ``batch`` as for
    :class:`sideman.models.edm.DiTEDMObjective`. The trainer calls ``set_step(step)`` before
    each step so that the index step follows the schedule across resumes.
    """

    loss: ConsistencyLoss
    dropout: ConditionDropout = field(default_factory=ConditionDropout)
    step: int = 0

    def set_step(self, step: int) -> None:
        self.step = step

    def __call__(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        x0 = batch["target"]
        ctx_mask, clap_mask = self.dropout.sample(x0.shape[0], x0.device)
        per_example = self.loss(model, x0, self.step, context=batch.get("context"),
                                clap=batch.get("clap"), context_mask=ctx_mask,
                                clap_mask=clap_mask)
        loss = per_example.mean()
        return loss, {"loss": loss.detach(), "index_step": self.loss.index_step(self.step)}
