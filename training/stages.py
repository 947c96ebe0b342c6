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

from sideman.numerics.checks import check_number

CODEC_PRESET_NAMES = ("tiny", "small", "base")  # models.spectral_codec.CODEC_PRESETS
CODEC_LATENT_HOP = 4096  # every codec preset's latent hop (samples)


def _opt(default, help: str, train: bool = True, **limits):
    """A field with its help text; train=False: a setting of the stage's evaluation or
    export, not an option of its trainer. `limits` (low, high, above) bound a number: the
    stage refuses a value outside them (_Checked) and so does its command-line option."""
    return field(default=default, metadata={"help": help, "train": train, **limits})


class _Checked:
    """Base of the stages: every field with limits is checked at construction."""

    def __post_init__(self) -> None:
        for f in fields(self):
            limits = {k: f.metadata[k] for k in ("low", "high", "above") if k in f.metadata}
            value = getattr(self, f.name)
            if limits and value is not None:
                check_number(f.name, value, **limits)


def option_fields(kind) -> list:
    """The fields of stage dataclass `kind` that are options of its trainer."""
    return [f for f in fields(kind) if f.metadata.get("train", True)]


@dataclass(frozen=True)
class AutoencoderStage(_Checked):
    """Consistency-autoencoder training (training.ae_training) and its held-out evaluation."""

    preset: str = _opt("small", "network shape (models.autoencoder.PRESETS)")
    steps: int = _opt(3000, "optimiser steps (the schedules span them)", low=1)
    batch_size: int = _opt(16, "training windows per step", low=1)
    lr: float = _opt(1e-3, "peak learning rate (AdamW)", low=0, above=True)
    warmup: int = _opt(100, "linear warm-up steps", low=0)
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported autoencoder)", low=0, high=1)
    latent_weight: float = _opt(1.0, "weight of the latent-range term", low=0)
    denoise_weight: float = _opt(1.0, "weight of the denoising term", low=0)
    magnitude_weight: float = _opt(10.0, "weight of the phase-blind magnitude term", low=0)
    consistency_weight: float = _opt(0.02, "weight of the consistency term", low=0)
    step_start: float = _opt(0.1, "consistency index step at the start", low=0, high=1, above=True)
    step_end: float = _opt(0.001, "consistency index step at the end", low=0, high=1, above=True)
    workers: int = _opt(1, "data-loading worker processes", low=0)
    epoch_batches: int = _opt(256, "batches per data epoch", low=1)
    log_every: int = _opt(25, "steps per line of log.csv", low=1)
    ckpt_every: int = _opt(250, "steps between checkpoints", low=1)
    decode_steps: int = _opt(1, "the bundle's decoding steps (1: the trained model reconstructs better)", False, low=1)
    decode_mode: str = _opt("parallel", "the bundle's decoding: all chunks in one batched call (1.9x faster "
                            "here, same quality) or sequential", False)
    eval_clips: int = _opt(8, "held-out clips of the stage's evaluation", False, low=1)
    eval_seconds: float = _opt(10.0, "seconds per evaluation clip", False, low=0, above=True)


@dataclass(frozen=True)
class CodecStage(_Checked):
    """Spectral-codec training (training.codec_training); the preset names the network's shape."""

    preset: str = _opt("small", "network shape: " + ", ".join(CODEC_PRESET_NAMES))
    steps: int = _opt(6000, "optimiser steps", low=1)
    batch_size: int = _opt(12, "crops per step", low=1)
    crop: int = _opt(98_304, f"crop length in samples, a multiple of {CODEC_LATENT_HOP} (98304: 2.05 s)", low=1)
    lr: float = _opt(4e-4, "peak learning rate (AdamW)", low=0, above=True)
    warmup: int = _opt(200, "linear warm-up steps", low=0)
    final_lr_fraction: float = _opt(0.1, "the cosine decay ends at this fraction of lr", low=0, high=1)
    weight_decay: float = _opt(0.01, "AdamW weight decay", low=0)
    grad_clip: float = _opt(1.0, "gradient norm clipping", low=0)
    sc_weight: float = _opt(1.0, "weight of spectral convergence on linear magnitude (beside log-magnitude L1)", low=0)
    mel_weight: float = _opt(1.0, "weight of the log10 mel-power L1 (the unit codec eval reports)", low=0)
    pitch_weight: float = _opt(1.0, "weight of the log-magnitude L1 in quarter-tone bands, 33 Hz-4.2 kHz", low=0)
    ema_decay: float = _opt(0.999, "EMA of the weights (the EMA weights are the codec)", low=0, high=1)
    mix_prob: float = _opt(0.25, "share of crops that are mixes of several stems", low=0, high=1)
    silence_db: float = _opt(-50.0, "crops quieter than this (RMS dBFS) are drawn again", high=0)
    bf16: bool = _opt(True, "bf16 autocast for the network (STFT and loss stay float32)")
    seed: int = _opt(0, "seed of the initial weights and of every batch", low=0)
    init_from: str = _opt("", "start from another codec checkpoint's current weights: every parameter whose "
                          "name and shape match (the rest keep their initialisation)")
    split: str = _opt("train", "songs to train on: train, validation or all")
    ckpt_minutes: float = _opt(10.0, "minutes between checkpoints", low=0, above=True)
    log_every: int = _opt(25, "steps per line of log.csv", low=1)

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
class ClapStage(_Checked):
    """House CLAP training (training.train_clap)."""

    preset: str = _opt("small", "network shape (models.clap_house.PRESETS)")
    steps: int = _opt(600, "optimiser steps", low=1)
    batch_size: int = _opt(64, "(audio, caption) pairs per step", low=1)
    lr: float = _opt(5e-4, "peak learning rate (AdamW)", low=0, above=True)
    warmup: int = _opt(200, "linear warm-up steps", low=0)
    weight_decay: float = _opt(0.01, "AdamW weight decay", low=0)
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported CLAP)", low=0, high=1)
    windows_per_stem: int = _opt(4, "audio windows per stem and epoch", low=1)
    caption_variants_per_stem: int = _opt(4, "caption paraphrases per stem", low=1)
    validation_fraction: float = _opt(0.1, "share of songs held out for retrieval figures", low=0, high=1)
    log_every: int = _opt(20, "steps per line of log.csv", low=1)
    ckpt_every: int = _opt(200, "steps between checkpoints", low=1)


@dataclass(frozen=True)
class BridgeStage(_Checked):
    """Text-to-audio CLAP bridge training (training.train_bridge)."""

    preset: str = _opt("compact", "network shape (models.bridge.PRESETS)")
    steps: int = _opt(2000, "optimiser steps", low=1)
    batch_size: int = _opt(256, "(text, audio) embedding pairs per step", low=1)
    lr: float = _opt(3e-4, "peak learning rate (AdamW)", low=0, above=True)
    warmup: int = _opt(100, "linear warm-up steps", low=0)
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported bridge)", low=0, high=1)
    segments_per_stem: int = _opt(8, "audio segments embedded per stem", low=1)
    caption_variants_per_stem: int = _opt(4, "caption paraphrases per stem", low=1)
    text_dropout: float | None = _opt(None, "share of unconditional examples (None: the preset's)", low=0, high=1)
    validation_fraction: float = _opt(0.1, "share of songs held out", low=0, high=1)
    log_every: int = _opt(20, "steps per line of log.csv", low=1)
    ckpt_every: int = _opt(200, "steps between checkpoints", low=1)


@dataclass(frozen=True)
class PairsStage(_Checked):
    """DiT training pairs encoded to latents (training.dit_data)."""

    count: int = _opt(640, "(context, target) pairs", low=1)
    seconds: float = _opt(10.0, "seconds per pair", low=0, above=True)
    clap_seconds: float = _opt(10.0, "seconds of target audio behind each CLAP embedding", low=0, above=True)


@dataclass(frozen=True)
class DiTStage(_Checked):
    """EDM training, then consistency training from the EDM weights (training.train_dit)."""

    preset: str = _opt("small", "network shape (models.dit.PRESETS)")
    edm_steps: int = _opt(1500, "EDM optimiser steps", low=1)
    edm_lr: float = _opt(3e-4, "EDM peak learning rate", low=0, above=True)
    consistency_steps: int = _opt(500, "consistency optimiser steps", low=1)
    consistency_lr: float = _opt(1e-4, "consistency peak learning rate", low=0, above=True)
    batch_size: int = _opt(16, "pairs per step", low=1)
    warmup: int = _opt(100, "linear warm-up steps", low=0)
    ema_decay: float = _opt(0.999, "EMA of the weights (the exported DiT)", low=0, high=1)
    log_every: int = _opt(25, "steps per line of log.csv", low=1)
    ckpt_every: int = _opt(250, "steps between checkpoints", low=1)
    bf16: bool = _opt(False, "bf16 autocast on a CPU too (faster for the wider presets on AMX CPUs)")
    val_every: int = _opt(250, "steps between held-out EDM losses in val.csv (given validation pairs)", low=1)
    cpu_minutes: float = _opt(0.0, "stop once training has used this much process CPU time (0: no limit)", low=0)
