"""The CLAP bridge's denoiser for ONNX; the engine runs the Heun sampler in numpy.

    bridge_step.onnx  x (B, 512) normalised, sigma (B,), text (B, 512) unit rows,
                      keep (B,) 1.0 = use the text, 0.0 = unconditional
                      -> denoised (B, 512) normalised
The normalisation statistics (mean, std) travel in bridge_norm.npz beside it.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from sideman.models.bridge import ClapBridge


class BridgeStep(nn.Module):
    def __init__(self, bridge: ClapBridge):
        super().__init__()
        self.bridge = bridge

    def forward(self, x: Tensor, sigma: Tensor, text: Tensor, keep: Tensor) -> Tensor:
        return self.bridge(x, sigma, text=text, keep=keep > 0.5)


def part(bridge: ClapBridge) -> tuple[nn.Module, tuple, list[str], list[str], dict]:
    dim = bridge.config.dim
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(2, dim, generator=g), torch.tensor([3.0, 0.1]),
            torch.nn.functional.normalize(torch.randn(2, dim, generator=g), dim=-1), torch.tensor([1.0, 0.0]))
    axes = {n: {0: "batch"} for n in ("x", "sigma", "text", "keep", "denoised")}
    return BridgeStep(bridge), args, ["x", "sigma", "text", "keep"], ["denoised"], axes
