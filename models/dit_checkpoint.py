"""A trained DiT as one file: config, parameterisation and weights (EMA by default).

    {"format": "sideman-dit-1", "kind": "edm" | "consistency", "config": DiTConfig fields,
     "sigma_data", "sigma_min", "latent_scale", "state_dict": weights of the DiT network}

`latent_scale` is the factor the DiT's latents were multiplied by in training (so their
RMS matched sigma_data); the loaded model carries it as `model.latent_scale`.

`export_dit` writes it from a preconditioned model (EDMPrecond or ConsistencyPrecond);
`load_dit` rebuilds that preconditioned model.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import nn

from sideman.models.checkpoint_io import atomic_torch_save
from sideman.models.consistency import ConsistencyPrecond
from sideman.models.dit import DiT, DiTConfig
from sideman.models.edm import EDMPrecond

FORMAT = "sideman-dit-1"


def save_dit(model: nn.Module, path: str | os.PathLike, latent_scale: float = 1.0) -> Path:
    """Write a preconditioned DiT (EDMPrecond or ConsistencyPrecond) atomically."""
    if isinstance(model, ConsistencyPrecond):
        kind, sigma_min = "consistency", model.sigma_min
    elif isinstance(model, EDMPrecond):
        kind, sigma_min = "edm", 0.002
    else:
        raise TypeError(f"expected EDMPrecond or ConsistencyPrecond, got {type(model).__name__}")
    return atomic_torch_save({"format": FORMAT, "kind": kind, "config": dataclasses.asdict(model.net.cfg),
                "sigma_data": model.sigma_data, "sigma_min": sigma_min,
                "latent_scale": float(latent_scale), "state_dict": model.net.state_dict()}, path)


def load_dit(path: str | os.PathLike, map_location: str = "cpu") -> nn.Module:
    """The preconditioned model saved by `save_dit`, in eval mode."""
    saved = torch.load(path, map_location=map_location, weights_only=True)
    if saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Sideman DiT file (format {saved.get('format')!r})")
    net = DiT(DiTConfig(**saved["config"]))
    net.load_state_dict(saved["state_dict"])
    if saved["kind"] == "consistency":
        model: nn.Module = ConsistencyPrecond(net, saved["sigma_data"], saved["sigma_min"])
    else:
        model = EDMPrecond(net, saved["sigma_data"])
    model.latent_scale = float(saved.get("latent_scale", 1.0))
    return model.eval()
