"""Every training stage's settings, defined once (torch-free).

The trainers take these dataclasses as their arguments; `sideman train all`'s recipes
(pipeline.recipes) are made of them; the command line builds each trainer's options from
their fields, help text included (`option_fields`). The defaults are the demo recipe's,
the one that made the embedded default bundle, so `sideman ae train` and `sideman train
all` cannot disagree. Seeds, folders and progress bars are run settings, not stage
settings: they are arguments of the trainers beside the stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

CODEC_PRESET_NAMES = ("tiny", "small", "base")  # models.spectral_codec.CODEC_PRESETS
CODEC_LATENT_HOP = 4096  # every codec preset's latent hop (samples)


def _opt(default, help: str, train: bool = True):
    """A field with its help text; train=False: a setting of the stage's evaluation or
    export, not an option of its trainer."""
    return field(default=default, metadata={"help": help, "train": train})


def option_fields(kind) -> list:
    """The fields of stage dataclass `kind` that are options of its trainer."""
    return [f for f in fields(kind) if f.metadata.get("train", True)]


@dataclass(frozen=True)
class AutoencoderStage:
    """Consistency-autoencoder training (training.ae_training) and its held-out evaluation."""

    preset: str = _opt("small", "network shape (models.autoencoder.PRESETS)")
    steps: int = _opt(3000, "optimiser steps (the schedules span them)")
    batch_size: int = _opt(16, "training windows per step")
    lr: float = _opt(1e-3, "peak learning rate (AdamW)")
    warmup: int = _opt(100, "linear warm-up steps")
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported autoencoder)")
    latent_weight: float = _opt(1.0, "weight of the latent-range term")
    denoise_weight: float = _opt(1.0, "weight of the denoising term")
    magnitude_weight: float = _opt(10.0, "weight of the phase-blind magnitude term")
    consistency_weight: float = _opt(0.02, "weight of the consistency term")
    step_start: float = _opt(0.1, "consistency index step at the start")
    step_end: float = _opt(0.001, "consistency index step at the end")
    workers: int = _opt(1, "data-loading worker processes")
    epoch_batches: int = _opt(256, "batches per data epoch")
    log_every: int = _opt(25, "steps per line of log.csv")
    ckpt_every: int = _opt(250, "steps between checkpoints")
    decode_steps: int = _opt(1, "the bundle's decoding steps (1: the trained model reconstructs better)", False)
    decode_mode: str = _opt("parallel", "the bundle's decoding: all chunks in one batched call (1.9x faster "
                            "here, same quality) or sequential", False)
    eval_clips: int = _opt(8, "held-out clips of the stage's evaluation", False)
    eval_seconds: float = _opt(10.0, "seconds per evaluation clip", False)


@dataclass(frozen=True)
class CodecStage:
    """Spectral-codec training (training.codec_training); the preset names the network's shape."""

    preset: str = _opt("small", "network shape: " + ", ".join(CODEC_PRESET_NAMES))
    steps: int = _opt(6000, "optimiser steps")
    batch_size: int = _opt(12, "crops per step")
    crop: int = _opt(98_304, f"crop length in samples, a multiple of {CODEC_LATENT_HOP} (98304: 2.05 s)")
    lr: float = _opt(4e-4, "peak learning rate (AdamW)")
    warmup: int = _opt(200, "linear warm-up steps")
    final_lr_fraction: float = _opt(0.1, "the cosine decay ends at this fraction of lr")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    grad_clip: float = _opt(1.0, "gradient norm clipping")
    sc_weight: float = _opt(1.0, "weight of spectral convergence on linear magnitude (beside log-magnitude L1)")
    mel_weight: float = _opt(1.0, "weight of the log10 mel-power L1 (the unit codec eval reports)")
    pitch_weight: float = _opt(1.0, "weight of the log-magnitude L1 in quarter-tone bands, 33 Hz-4.2 kHz")
    ema_decay: float = _opt(0.999, "EMA of the weights (the EMA weights are the codec)")
    mix_prob: float = _opt(0.25, "share of crops that are mixes of several stems")
    silence_db: float = _opt(-50.0, "crops quieter than this (RMS dBFS) are drawn again")
    bf16: bool = _opt(True, "bf16 autocast for the network (STFT and loss stay float32)")
    seed: int = _opt(0, "seed of the initial weights and of every batch")
    init_from: str = _opt("", "start from another codec checkpoint's current weights: every parameter whose "
                          "name and shape match (the rest keep their initialisation)")
    split: str = _opt("train", "songs to train on: train, validation or all")
    ckpt_minutes: float = _opt(10.0, "minutes between checkpoints")
    log_every: int = _opt(25, "steps per line of log.csv")

    def check(self) -> None:
        if self.preset not in CODEC_PRESET_NAMES:
            raise ValueError(f"unknown codec preset {self.preset!r}: choose {', '.join(CODEC_PRESET_NAMES)}")
        if self.crop <= 0 or self.crop % CODEC_LATENT_HOP:
            raise ValueError(f"crop must be a positive multiple of {CODEC_LATENT_HOP} samples")
        if min(self.steps, self.batch_size, self.log_every) < 1 or self.lr <= 0 or self.ckpt_minutes <= 0:
            raise ValueError("steps, batch_size, log_every, lr and ckpt_minutes must be positive")
        if not 0 <= self.mix_prob <= 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("mix_prob must be in [0, 1] and ema_decay in [0, 1)")
        if self.split not in ("train", "validation", "all"):
            raise ValueError("split must be train, validation or all")


@dataclass(frozen=True)
class ClapStage:
    """House CLAP training (training.train_clap)."""

    preset: str = _opt("small", "network shape (models.clap_house.PRESETS)")
    steps: int = _opt(600, "optimiser steps")
    batch_size: int = _opt(64, "(audio, caption) pairs per step")
    lr: float = _opt(5e-4, "peak learning rate (AdamW)")
    warmup: int = _opt(200, "linear warm-up steps")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported CLAP)")
    windows_per_stem: int = _opt(4, "audio windows per stem and epoch")
    caption_variants_per_stem: int = _opt(4, "caption paraphrases per stem")
    validation_fraction: float = _opt(0.1, "share of songs held out for retrieval figures")
    log_every: int = _opt(20, "steps per line of log.csv")
    ckpt_every: int = _opt(200, "steps between checkpoints")


@dataclass(frozen=True)
class BridgeStage:
    """Text-to-audio CLAP bridge training (training.train_bridge)."""

    preset: str = _opt("compact", "network shape (models.bridge.PRESETS)")
    steps: int = _opt(2000, "optimiser steps")
    batch_size: int = _opt(256, "(text, audio) embedding pairs per step")
    lr: float = _opt(3e-4, "peak learning rate (AdamW)")
    warmup: int = _opt(100, "linear warm-up steps")
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported bridge)")
    segments_per_stem: int = _opt(8, "audio segments embedded per stem")
    caption_variants_per_stem: int = _opt(4, "caption paraphrases per stem")
    text_dropout: float | None = _opt(None, "share of unconditional examples (None: the preset's)")
    validation_fraction: float = _opt(0.1, "share of songs held out")
    log_every: int = _opt(20, "steps per line of log.csv")
    ckpt_every: int = _opt(200, "steps between checkpoints")


@dataclass(frozen=True)
class PairsStage:
    """DiT training pairs encoded to latents (training.dit_data)."""

    count: int = _opt(640, "(context, target) pairs")
    seconds: float = _opt(10.0, "seconds per pair")
    clap_seconds: float = _opt(10.0, "seconds of target audio behind each CLAP embedding")


@dataclass(frozen=True)
class DiTStage:
    """EDM training, then consistency training from the EDM weights (training.train_dit)."""

    preset: str = _opt("small", "network shape (models.dit.PRESETS)")
    edm_steps: int = _opt(1500, "EDM optimiser steps")
    edm_lr: float = _opt(3e-4, "EDM peak learning rate")
    consistency_steps: int = _opt(500, "consistency optimiser steps")
    consistency_lr: float = _opt(1e-4, "consistency peak learning rate")
    batch_size: int = _opt(16, "pairs per step")
    warmup: int = _opt(100, "linear warm-up steps")
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported DiT)")
    log_every: int = _opt(25, "steps per line of log.csv")
    ckpt_every: int = _opt(250, "steps between checkpoints")
    bf16: bool = _opt(False, "bf16 autocast on a CPU too (faster for the wider presets on AMX CPUs)")
    val_every: int = _opt(250, "steps between held-out EDM losses in val.csv (given validation pairs)")
    cpu_minutes: float = _opt(0.0, "stop once training has used this much process CPU time (0: no limit)")
