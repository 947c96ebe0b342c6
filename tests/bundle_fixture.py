"""A tiny random-weight model bundle for tests: real export, real onnxruntime, seconds to make.

Weights are perturbed away from their AdaLN-Zero initialisation so every network computes
something that depends on all its inputs (a zero-initialised output layer would hide bugs).
"""
from __future__ import annotations

from pathlib import Path

import torch

from sideman.export.bundle import export_bundle
from sideman.models.autoencoder import PRESETS as AE_PRESETS, Autoencoder
from sideman.models.bridge import PRESETS as BRIDGE_PRESETS, ClapBridge
from sideman.models.clap_house import PRESETS as CLAP_PRESETS, HouseClap
from sideman.models.consistency import ConsistencyPrecond
from sideman.models.dit import PRESETS as DIT_PRESETS, DiT


def perturb(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module.eval()


def tiny_models(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    clap = perturb(HouseClap(CLAP_PRESETS["tiny"]), seed=seed + 3)
    bridge = perturb(ClapBridge(BRIDGE_PRESETS["tiny"]), seed=seed + 4)
    return {"autoencoder": perturb(Autoencoder(AE_PRESETS["tiny"]), seed=seed + 1),
            "dit": perturb(ConsistencyPrecond(DiT(DIT_PRESETS["tiny"])), seed=seed + 2),
            "clap": clap, "bridge": bridge}


def make_tiny_bundle(out_dir: str | Path, seed: int = 0, **kw) -> Path:
    """Export the tiny random models into `out_dir`; returns the bundle folder."""
    return export_bundle(out_dir, name="tiny-test", **tiny_models(seed), **kw)
