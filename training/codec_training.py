"""Training of the spectral codec (`models.spectral_codec`) on a multitrack data set, on CPU.

The training split's stems are read once into memory as 16-bit integers. Step s draws its
batch from a generator seeded by (seed, s): each item is a stem or, with probability
``mix_prob``, the mix of a random subset of a song's stems, cropped at a random start to
``crop`` samples (a multiple of the latent hop) and skipped while nearly silent. The batch
is therefore a pure function of (seed, step), and a run resumed from its checkpoint (model,
EMA, optimiser, step) continues exactly where it stopped.

Optimisation: AdamW, linear warm-up then cosine decay to ``final_lr_fraction``, gradient
clipping, optional bf16 autocast for the network (the STFT and the loss stay float32), an
EMA of the weights (the exported weights). A checkpoint is written atomically every
``ckpt_minutes`` and at the end; ``log.csv`` gets one line per ``log_every`` steps.
"""
from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sideman.data.audio import load_audio
from sideman.data.layouts import read_multitrack
from sideman.data.pairs import song_split
from sideman.models.checkpoint_io import atomic_torch_save
from sideman.models.spectral_codec import CODEC_PRESETS, SpectralCodec, codec_loss
from sideman.training.stages import CodecStage


PREDATING = {"pitch_weight": 0.0}  # what a checkpoint made before a field existed was trained with


class StemBank:
    """Every stem of the training songs in memory (int16), and the seeded batch sampler."""

    def __init__(self, data_dir: Path, split: str = "train", progress: bool = True):
        data = read_multitrack(data_dir, progress=progress)
        songs = [s for s in data.songs if split == "all" or song_split(s.song_id, 0.1) == split]
        if not songs:
            raise ValueError(f"no {split} songs in {data_dir}")
        self.songs: list[list[np.ndarray]] = []
        for song in tqdm(songs, desc="loading stems", unit="song", disable=not progress):
            stems = [load_audio(st.path, 0, song.frames) for st in song.stems if not st.is_vocal]
            self.songs.append([np.round(np.clip(a, -1, 1) * 32767).astype(np.int16) for a in stems])

    def batch(self, cfg: CodecStage, step: int) -> torch.Tensor:
        """Batch of step `step`: (batch_size, 2, crop) float32, a pure function of (seed, step)."""
        rng = np.random.default_rng([cfg.seed, step])
        out = np.zeros((cfg.batch_size, 2, cfg.crop), np.float32)
        floor = 10 ** (cfg.silence_db / 20)
        for i in range(cfg.batch_size):
            for _ in range(16):  # a few tries to find audio that is not silent
                song = self.songs[rng.integers(len(self.songs))]
                start = int(rng.integers(0, max(1, song[0].shape[1] - cfg.crop)))
                if rng.random() < cfg.mix_prob and len(song) > 1:
                    chosen = rng.choice(len(song), size=int(rng.integers(2, len(song) + 1)), replace=False)
                else:
                    chosen = [int(rng.integers(len(song)))]
                clip = sum(song[j][:, start:start + cfg.crop].astype(np.float32) for j in chosen) / 32767
                if clip.shape[1] == cfg.crop and np.sqrt(np.mean(clip ** 2)) > floor:
                    break
            peak = np.abs(clip).max()
            out[i, :, :clip.shape[1]] = clip / peak * min(peak, 0.99) if peak > 0 else clip
        return torch.from_numpy(out)


def learning_rate(cfg: CodecStage, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_codec(data_dir: Path, out_dir: Path, cfg: CodecStage, progress: bool = True,
                stop_after: int | None = None) -> Path:
    """Train (or resume from OUT/checkpoint.pt) and return the checkpoint's path; the EMA
    weights are the codec (``ema`` in the checkpoint, with its config). stop_after: stop
    (with a checkpoint) after that many steps of this call, e.g. to fit a time budget."""
    cfg.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    model = SpectralCodec(CODEC_PRESETS[cfg.preset])
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        stored = {**asdict(CodecStage()), **PREDATING, **state["training"]}  # for fields added later
        if stored != asdict(cfg):
            raise ValueError(f"{ckpt_path} was made with other settings; choose another output folder")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
    elif cfg.init_from:
        loaded = initialise_from(model, Path(cfg.init_from))
        ema.load_state_dict(model.state_dict())
        print(f"codec: {len(loaded)} of {len(model.state_dict())} tensors from {cfg.init_from}")
    if step >= cfg.steps:
        return ckpt_path
    bank = StemBank(data_dir, cfg.split, progress=progress)
    stop = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    log = open(out / "log.csv", "a", newline="")
    writer = csv.writer(log)
    if step == 0:
        writer.writerow(["step", "loss", "log_l1", "sc", "mel", "pitch", "lr", "seconds"])

    def checkpoint() -> None:
        atomic_torch_save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                          "step": step, "training": asdict(cfg), "codec": model.describe()}, ckpt_path)

    bar = tqdm(total=cfg.steps, initial=step, desc="codec", unit="step", disable=not progress)
    last_ckpt = start = time.time()
    sums = {"loss": 0.0, "log_l1": 0.0, "sc": 0.0, "mel": 0.0, "pitch": 0.0}
    while step < stop:
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        audio = bank.batch(cfg, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            log_mag, _ = model(audio)
        loss, terms = codec_loss(audio, log_mag.float(), model.config.n_fft, model.config.hop, cfg.sc_weight,
                                 cfg.mel_weight, cfg.pitch_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - cfg.ema_decay)
        step += 1
        sums["loss"] += float(loss.detach())
        for k, v in terms.items():
            sums[k] += v
        bar.update()
        if step % cfg.log_every == 0:
            writer.writerow([step] + [f"{sums[k] / cfg.log_every:.5f}" for k in sums]
                            + [f"{lr:.3g}", f"{time.time() - start:.1f}"])
            log.flush()
            bar.set_postfix(loss=f"{sums['loss'] / cfg.log_every:.3f}")
            sums = dict.fromkeys(sums, 0.0)
        if time.time() - last_ckpt > 60 * cfg.ckpt_minutes:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    bar.close()
    log.close()
    return ckpt_path


def initialise_from(model: SpectralCodec, path: Path) -> list[str]:
    """Copy into `model` the current weights ("model") of the codec checkpoint at `path`
    whose names and shapes match; return their names. Refuses a file that is not a codec
    checkpoint or shares no tensor with the model."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("codec", {}).get("kind") != "spectral_codec":
        raise ValueError(f"{path} is not a spectral codec checkpoint")
    own = model.state_dict()
    matching = {k: v for k, v in state["model"].items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise ValueError(f"{path} shares no tensor with a {type(model).__name__} of this shape")
    model.load_state_dict(matching, strict=False)
    return sorted(matching)


def load_codec(path: Path, weights: str = "ema") -> SpectralCodec:
    """The codec of a training checkpoint, in eval mode: its EMA weights ("ema", what is
    exported) or the optimiser's current weights ("model": early in a run the EMA still
    holds much of the initialisation)."""
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', not {weights!r}")
    from sideman.models.spectral_codec import CodecConfig

    state = torch.load(path, map_location="cpu", weights_only=False)
    config = state["codec"]["config"]
    model = SpectralCodec(CodecConfig(**{**config, "analysis_ffts": tuple(config["analysis_ffts"])}))
    model.load_state_dict(state[weights])
    return model.eval()


def load_codec_file(path: Path):
    """Either codec from its file, in eval mode: a spectral codec training checkpoint
    (`load_codec`) or an autoencoder file (models.autoencoder.load_autoencoder)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and state.get("codec", {}).get("kind") == "spectral_codec":
        return load_codec(path)
    from sideman.models.autoencoder import load_autoencoder

    return load_autoencoder(path)
