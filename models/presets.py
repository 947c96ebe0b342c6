"""Every model preset in one place, with a way to count its parameters without building it.

    kind         presets                  config class
    autoencoder  paper, small, tiny       models.autoencoder.AutoencoderConfig
    dit          paper, small, tiny       models.dit.DiTConfig
    clap         small, tiny              models.clap_house.HouseClapConfig (trainable part;
                                          the frozen MiniLM text encoder adds 22.7M)
    bridge       paper, small,            models.bridge.BridgeConfig
                 compact, tiny
"""
from __future__ import annotations

import torch
from torch import nn

from sideman.models import autoencoder, bridge, clap_house, dit

REGISTRY: dict[str, tuple[dict, type]] = {
    "autoencoder": (autoencoder.PRESETS, autoencoder.Autoencoder),
    "dit": (dit.PRESETS, dit.DiT),
    "clap": (clap_house.PRESETS, clap_house.HouseClap),
    "bridge": (bridge.PRESETS, bridge.ClapBridge),
}


def config(kind: str, name: str):
    if kind not in REGISTRY:
        raise KeyError(f"unknown model kind '{kind}' (choose from {', '.join(REGISTRY)})")
    presets = REGISTRY[kind][0]
    if name not in presets:
        raise KeyError(f"unknown {kind} preset '{name}' (choose from {', '.join(presets)})")
    return presets[name]


def build(kind: str, name: str) -> nn.Module:
    return REGISTRY[kind][1](config(kind, name))


def parameter_count(kind: str, name: str) -> int:
    """Trainable parameters, counted on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        model = build(kind, name)
    return sum(p.numel() for p in model.parameters())


def table() -> list[tuple[str, str, int]]:
    """(kind, preset, parameters) for every preset."""
    return [(kind, name, parameter_count(kind, name))
            for kind, (presets, _) in REGISTRY.items() for name in presets]
