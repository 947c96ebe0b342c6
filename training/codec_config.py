"""Settings of spectral-codec training (`training.codec_training`), torch-free so that the
command line can build its options from them without importing torch."""
from __future__ import annotations

from dataclasses import dataclass, field

CODEC_PRESET_NAMES = ("tiny", "small", "base")  # models.spectral_codec.CODEC_PRESETS
LATENT_HOP = 4096  # every preset's latent hop (samples)


def _opt(default, help: str):
    """A dataclass field with its help text (the CLI options are generated from these)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class CodecTraining:
    """Settings of a codec training run (the preset names the network's shape)."""

    preset: str = _opt("small", "network shape: " + ", ".join(CODEC_PRESET_NAMES))
    steps: int = _opt(6000, "optimiser steps")
    batch_size: int = _opt(12, "crops per step")
    crop: int = _opt(98_304, "crop length in samples, a multiple of 4096 (98304: 2.05 s)")
    lr: float = _opt(4e-4, "peak learning rate (AdamW)")
    warmup: int = _opt(200, "linear warm-up steps")
    final_lr_fraction: float = _opt(0.1, "the cosine decay ends at this fraction of lr")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    grad_clip: float = _opt(1.0, "gradient norm clipping")
    sc_weight: float = _opt(1.0, "weight of spectral convergence on linear magnitude (beside log-magnitude L1)")
    mel_weight: float = _opt(1.0, "weight of the log10 mel-power L1 (the unit codec eval reports)")
    ema_decay: float = _opt(0.999, "EMA of the weights (the EMA weights are the codec)")
    mix_prob: float = _opt(0.25, "share of crops that are mixes of several stems")
    silence_db: float = _opt(-50.0, "crops quieter than this (RMS dBFS) are drawn again")
    bf16: bool = _opt(True, "bf16 autocast for the network (STFT and loss stay float32)")
    seed: int = _opt(0, "seed of the initial weights and of every batch")
    split: str = _opt("train", "songs to train on: train, validation or all")
    ckpt_minutes: float = _opt(10.0, "minutes between checkpoints")
    log_every: int = _opt(25, "steps per line of log.csv")

    def check(self) -> None:
        if self.preset not in CODEC_PRESET_NAMES:
            raise ValueError(f"unknown codec preset {self.preset!r}: choose {', '.join(CODEC_PRESET_NAMES)}")
        if self.crop <= 0 or self.crop % LATENT_HOP:
            raise ValueError(f"crop must be a positive multiple of {LATENT_HOP} samples")
        if min(self.steps, self.batch_size, self.log_every) < 1 or self.lr <= 0 or self.ckpt_minutes <= 0:
            raise ValueError("steps, batch_size, log_every, lr and ckpt_minutes must be positive")
        if not 0 <= self.mix_prob <= 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("mix_prob must be in [0, 1] and ema_decay in [0, 1)")
        if self.split not in ("train", "validation", "all"):
            raise ValueError("split must be train, validation or all")
