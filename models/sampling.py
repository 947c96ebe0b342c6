"""A torch C-DiT as the step function of the one sampler (numerics.sampler).

Guidance with separate weights for the context and the CLAP condition (nested CFG):

    D = (1 - w_ctx) D(0, 0) + (w_ctx - w_clap) D(ctx, 0) + w_clap D(ctx, clap)

where ``0`` is a dropped condition; numerics.guidance decides the passes from the weights
(an absent condition is dropped in every pass, passes with a zero coefficient are skipped).
`GuidedStep` runs all passes as ONE batched network call. It is the graph that
export.dit_step writes to ONNX, and, through `step_function`, what training, evaluation
and tests sample with, so the torch network and its export share one sampler.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from sideman.numerics.sampler import GuidedConsistency, SamplerSettings, StepFn, sample_latents

__all__ = ["GuidedStep", "step_function", "sample"]


class GuidedStep(nn.Module):
    """A preconditioned DiT (consistency or EDM) with its guidance passes batched:

        x (B, C, T), sigma (B,), context (B, C, T), clap (B, D),
        pass_context (P,), pass_clap (P,)  1.0 = condition kept, 0.0 = dropped,
        pass_coef (P,)                     the pass's weight in the sum
        -> denoised (B, C, T) = sum_p pass_coef[p] * model(x, sigma | pass p)
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, sigma: Tensor, context: Tensor, clap: Tensor, pass_context: Tensor,
                pass_clap: Tensor, pass_coef: Tensor) -> Tensor:
        passes, batch = pass_coef.shape[0], x.shape[0]
        out = self.model(x.repeat(passes, 1, 1), sigma.repeat(passes),
                         context=context.repeat(passes, 1, 1), clap=clap.repeat(passes, 1),
                         context_mask=(pass_context < 0.5).repeat_interleave(batch),
                         clap_mask=(pass_clap < 0.5).repeat_interleave(batch))
        out = out.reshape(passes, batch, x.shape[1], x.shape[2])
        return (out * pass_coef.reshape(passes, 1, 1, 1)).sum(0)


def step_function(model: nn.Module) -> StepFn:
    """The numpy step function (numerics.sampler.StepFn) of a preconditioned torch DiT."""
    step = GuidedStep(model).eval()
    device = next(model.parameters()).device

    @torch.no_grad()
    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return step(**{k: torch.from_numpy(v).to(device) for k, v in inputs.items()}).float().cpu().numpy()
    return run


def sample(model: nn.Module, frames: int, *, context: np.ndarray | None = None, clap: np.ndarray | None = None,
           batch: int = 1, settings: SamplerSettings = SamplerSettings(), seed: int = 0,
           take: np.ndarray | None = None, keep: np.ndarray | None = None) -> np.ndarray:
    """Latents (B, C, frames) from a preconditioned torch DiT through numerics.sampler.

    context: (B, C, frames) or None; clap: (B, D) or None; batch: B when neither is given;
    take/keep: a previous take (B, C, frames) and kept frames (frames,) or (B, frames)."""
    channels, clap_dim = model.net.cfg.latent_channels, model.net.cfg.clap_dim
    b = next((c.shape[0] for c in (context, clap, take) if c is not None), batch)
    f = GuidedConsistency(step_function(model), context, clap, settings.w_context, settings.w_clap,
                          (channels, frames), clap_dim)
    return sample_latents(f, (b, channels, frames), settings, np.random.default_rng(seed), take, keep)
