"""The C-DiT step function for ONNX (models.sampling.GuidedStep): one consistency-function
call with the guidance passes batched.

Guidance (numerics.guidance) is a weighted sum of P passes, each with the context
and/or the CLAP condition kept or dropped. The engine decides the passes from the weights
(P = 2 for the default equal weights) and hands them to this one graph:

    x (B, 64, T), sigma (B,), context (B, 64, T), clap (B, 512),
    pass_context (P,), pass_clap (P,)  1.0 = condition kept, 0.0 = dropped,
    pass_coef (P,)                     the pass's weight in the sum
    -> denoised (B, 64, T) = sum_p pass_coef[p] * f(x, sigma | pass p)
"""
from __future__ import annotations

import torch

from sideman.models.sampling import GuidedStep

__all__ = ["GuidedStep", "INPUTS", "OUTPUTS", "DYNAMIC_AXES", "example_inputs"]

INPUTS = ["x", "sigma", "context", "clap", "pass_context", "pass_clap", "pass_coef"]
OUTPUTS = ["denoised"]
DYNAMIC_AXES = {"x": {0: "batch", 2: "frames"}, "sigma": {0: "batch"},
                "context": {0: "batch", 2: "frames"}, "clap": {0: "batch"},
                "pass_context": {0: "passes"}, "pass_clap": {0: "passes"},
                "pass_coef": {0: "passes"}, "denoised": {0: "batch", 2: "frames"}}


def example_inputs(latent_channels: int, clap_dim: int, frames: int = 24) -> tuple:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(1, latent_channels, frames, generator=g), torch.tensor([1.5]),
            torch.randn(1, latent_channels, frames, generator=g), torch.randn(1, clap_dim, generator=g),
            torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([-0.25, 1.25]))
