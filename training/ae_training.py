"""Consistency training of the autoencoder (Music2Latent recipe) on the shared Trainer.

Data: random windows of two consecutive chunks (2 x 12288 samples = 0.51 s at 48 kHz) of
either one stem or the mix of a random subset of a song's stems (each with probability
1/2), from the training split of any layout ``sideman.data`` reads. Windows whose level
is below ``silence_db`` are re-drawn. Window ``i`` is a pure function of ``(seed, i)``
and epoch ``e`` uses indices ``[e L, (e+1) L)``, so every epoch brings new windows and a
resumed run sees the same data as an uninterrupted one.

Objective (continuous-time consistency training): per chunk of the window an index
``u ~ U(du, 1)`` maps to ``sigma = karras(u)`` (sigma_min 0.002, sigma_max 80, rho 7); the
teacher is the same network under stop-gradient at ``karras(max(u - du, 0))`` with the
same noise; ``du`` shrinks exponentially from 0.1 to 0.001 over training. Loss per chunk:
``pseudo_huber(student, teacher) / (sigma - sigma')`` with ``c = 0.00054 sqrt(d)``, plus
``latent_weight`` x the bottleneck's RMS-band penalty. The encoder and decoder learn
through the student's conditioning.

Optional denoising term (``denoise_weight`` > 0; 0 is the pure Music2Latent recipe):
``mean((student - spec)^2) / sigma_data^2``, the student's own output regressed on the
clean spectrogram, as the denoising-score-matching regulariser of Consistency Trajectory
Models (Kim et al., 2023). It costs no extra forward pass and gives the encoder and the
decoder a direct reconstruction signal from the first step, which pure consistency
training only builds up over hundreds of thousands of steps; on 2 CPU cores it is what
makes a codec trainable in an hour.

Optional magnitude term (``magnitude_weight`` > 0): ``mean((|student| - |spec|)^2) /
sigma_data^2`` on the complex magnitudes, blind to phase. The regression alone drives
the output towards zero wherever the phase is not predictable from the latents (the mean
of such complex values); this term keeps the magnitudes. ``consistency_weight`` scales
the consistency term (1 in the Music2Latent recipe).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from sideman.data.files import atomic_write
from sideman.training.stages import AutoencoderStage
from sideman.data.audio import load_audio
from sideman.data.layouts import read_multitrack
from sideman.data.multitrack import BLOCK, Multitrack, Song
from sideman.data.pairs import song_split
from sideman.models.autoencoder import (CONFIG_FILE, PRESETS, Autoencoder, AutoencoderConfig,
                                  save_autoencoder, to_chunks)
from sideman.models.consistency import pseudo_huber
from sideman.numerics.guidance import karras_sigma_at
from sideman.numerics.schedules import exponential_decay
from sideman.training.trainer import TrainConfig, Trainer, distributed_env

__all__ = ["AudioWindows", "EpochSampler", "ConsistencyObjective", "split_songs",
           "train_autoencoder"]


def complex_magnitude(spec: Tensor, eps: float = 1e-8) -> Tensor:
    """``(B, 4, F, T)`` (left re/im, right re/im) -> ``(B, 2, F, T)`` magnitudes."""
    b, _, f, t = spec.shape
    return spec.reshape(b, 2, 2, f, t).square().sum(dim=2).add(eps).sqrt()


def split_songs(data: Multitrack, split: str, validation_fraction: float = 0.1) -> list[Song]:
    """Songs of ``split`` ('train', 'validation' or 'all') by the pair sampler's hash rule."""
    return [s for s in data.songs if not s.path.name.startswith(".")
            and (split == "all" or song_split(s.song_id, validation_fraction) == split)]


class AudioWindows(Dataset):
    """``window`` samples of one stem or of a stem-subset mix: item ``i`` is a float32
    ``(2, window)`` tensor at 48 kHz, a pure function of ``(seed, i)`` (any ``i >= 0``)."""

    def __init__(self, songs: list[Song], window: int, seed: int = 0, mix_prob: float = 0.5,
                 silence_db: float = -50.0, tries: int = 8) -> None:
        songs = [s for s in songs if s.frames >= window]
        if not songs:
            raise ValueError(f"no song is longer than the {window}-sample training window")
        self.songs, self.window, self.seed = songs, window, seed
        self.mix_prob, self.silence_db, self.tries = mix_prob, silence_db, tries

    def __len__(self) -> int:
        return 2 ** 62

    def choose(self, index: int) -> tuple[Song, list, int]:
        """``(song, stems, start sample)`` of item ``index``."""
        rng = np.random.default_rng((self.seed, index))
        song = self.songs[int(rng.integers(len(self.songs)))]
        if len(song.stems) > 1 and rng.random() < self.mix_prob:
            size = int(rng.integers(2, len(song.stems) + 1))
            stems = [song.stems[i] for i in sorted(rng.choice(len(song.stems), size, replace=False))]
        else:
            stems = [song.stems[int(rng.integers(len(song.stems)))]]
        blocks = math.ceil(self.window / BLOCK)
        level = sum(s.activity[:song.frames // BLOCK] for s in stems)
        start = 0
        for _ in range(self.tries):
            start = int(rng.integers(0, song.frames - self.window + 1))
            window_level = level[start // BLOCK:start // BLOCK + blocks].mean()
            if 10 * np.log10(max(float(window_level), 1e-20)) > self.silence_db:
                break
        return song, stems, start

    def __getitem__(self, index: int) -> Tensor:
        _, stems, start = self.choose(index)
        audio = sum(load_audio(s.path, start, self.window) for s in stems)
        return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


class EpochSampler(Sampler[int]):
    """Epoch ``e`` yields a seeded permutation of ``[e L, (e+1) L)`` (this rank's share
    under DDP); the trainer calls :meth:`set_epoch`."""

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length, self.seed, self.epoch = length, seed, 0
        self.rank, _, self.world = distributed_env()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = self.epoch * self.length + torch.randperm(self.length, generator=g)
        return iter(order[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))


@dataclass
class ConsistencyObjective:
    """``loss_fn(model, batch) -> (loss, scalars)`` for the Trainer; ``batch (B, 2, W*chunk)``.

    Scalars: ``consistency`` (weighted pseudo-Huber), ``latent_penalty``, ``latent_std``
    (std of the latents z), ``latent_sat`` (fraction of |z| > 0.9 a), ``index_step`` (du).
    """

    total_steps: int
    step_start: float = 0.1
    step_end: float = 0.001
    latent_weight: float = 1.0
    denoise_weight: float = 0.0
    magnitude_weight: float = 0.0
    consistency_weight: float = 1.0
    step: int = 0

    def set_step(self, step: int) -> None:
        self.step = step

    def index_step(self) -> float:
        return exponential_decay(self.step, self.total_steps, self.step_start, self.step_end)

    def sigmas(self, cfg: AutoencoderConfig, shape: tuple[int, int],
               device: torch.device) -> tuple[Tensor, Tensor]:
        """Student and teacher levels ``(B, W)``, ``sigma > sigma' >= sigma_min``."""
        du = self.index_step()
        u = du + (1 - du) * torch.rand(shape, device=device)
        at = lambda v: karras_sigma_at(v, cfg.sigma_min, cfg.sigma_max, cfg.rho)  # noqa: E731
        return at(u), at((u - du).clamp(min=0.0))

    def __call__(self, model: nn.Module, batch: Tensor) -> tuple[Tensor, dict]:
        core: Autoencoder = getattr(model, "module", model)
        cfg = core.cfg
        b, w = batch.shape[0], batch.shape[-1] // cfg.chunk_samples
        sigma, sigma_t = self.sigmas(cfg, (b, w), batch.device)
        noise = torch.randn(b, 4, cfg.bins, w * cfg.chunk_frames, device=batch.device)
        out = model(batch, sigma, sigma_t, noise)
        dist = pseudo_huber(to_chunks(out["student"], cfg.chunk_frames),
                            to_chunks(out["teacher"], cfg.chunk_frames))     # (B*W,)
        consistency = (dist / (sigma - sigma_t).reshape(-1)).mean()
        penalty = core.bottleneck.penalty(out["y"])
        loss = self.consistency_weight * consistency + self.latent_weight * penalty
        scalars = {}
        if self.denoise_weight > 0 or self.magnitude_weight > 0:
            spec = core.transform(batch).float()
        if self.denoise_weight > 0:
            denoise = (out["student"] - spec).square().mean() / cfg.sigma_data ** 2
            loss = loss + self.denoise_weight * denoise
            scalars["denoise"] = denoise.detach()
        if self.magnitude_weight > 0:
            magnitude = (complex_magnitude(out["student"]) - complex_magnitude(spec)).square().mean() \
                / cfg.sigma_data ** 2
            loss = loss + self.magnitude_weight * magnitude
            scalars["magnitude"] = magnitude.detach()
        with torch.no_grad():
            z = core.bottleneck(out["y"].float())
            sat = (z.abs() > 0.9 * cfg.latent_bound).float().mean()
        return loss, {
            **scalars, "consistency": consistency.detach(), "latent_penalty": penalty.detach(),
            "latent_std": z.std(), "latent_sat": sat, "index_step": self.index_step()}


def _write_run_config(out: Path, cfg: AutoencoderConfig, preset: str, train: dict) -> None:
    """``autoencoder.json`` in the run folder; a resumed run must use the same model."""
    file = out / CONFIG_FILE
    record = {"preset": preset, "model": asdict(cfg), "train": train}
    if file.is_file():
        old = json.loads(file.read_text())
        if old["model"] != record["model"]:
            raise ValueError(f"{file}: the run was started with another model configuration; "
                             f"use a new output folder")
    atomic_write(file, json.dumps(record, indent=2))


def train_autoencoder(data_dir: str | Path, out_dir: str | Path, stage: AutoencoderStage = AutoencoderStage(), *,
                      seed: int = 0, layout: str = "auto", progress: bool = True, until: int | None = None,
                      config: AutoencoderConfig | None = None) -> Path:
    """Train (or resume) an autoencoder with the settings of `stage`; returns the exported
    ``out_dir/autoencoder.pt``.

    ``out_dir`` gets the trainer's ``last.pt``, ``log.csv`` and ``loss.png``, the run's
    ``autoencoder.json`` and, at the end, ``autoencoder.pt`` (EMA weights + config, the
    file that :func:`sideman.models.autoencoder.load_autoencoder` and the encode/decode
    commands read). ``until`` stops early at that step (the schedules still span
    ``stage.steps``); ``config`` overrides the preset. Launch under ``torchrun`` for DDP;
    bf16 autocast is used on CUDA.
    """
    s = stage
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config or PRESETS[s.preset]
    data = read_multitrack(data_dir, layout, progress=progress)
    songs = split_songs(data, "train")
    dataset = AudioWindows(songs, 2 * cfg.chunk_samples, seed=seed)
    loader = DataLoader(dataset, s.batch_size, sampler=EpochSampler(s.epoch_batches * s.batch_size, seed),
                        num_workers=s.workers, drop_last=True, persistent_workers=False)
    rank = distributed_env()[0]
    if rank == 0:
        _write_run_config(out, cfg, s.preset, {"data_dir": str(data_dir), **asdict(s), "seed": seed,
                                               "songs": len(songs)})
    objective = ConsistencyObjective(total_steps=s.steps, step_start=s.step_start, step_end=s.step_end,
                                     latent_weight=s.latent_weight, denoise_weight=s.denoise_weight,
                                     magnitude_weight=s.magnitude_weight, consistency_weight=s.consistency_weight)
    trainer = Trainer(Autoencoder(cfg), objective, loader, TrainConfig(
        out_dir=str(out), total_steps=s.steps, lr=s.lr, warmup_steps=s.warmup, ema_decay=s.ema_decay,
        log_every=s.log_every, ckpt_every=s.ckpt_every, seed=seed, progress=progress))
    trainer.fit(until)
    path = out / "autoencoder.pt"
    if rank == 0:
        save_autoencoder(trainer.ema.module, path, step=trainer.step, preset=s.preset)
    return path
