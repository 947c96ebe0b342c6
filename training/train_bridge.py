"""Train the CLAP bridge (text CLAP -> audio CLAP diffusion) with a trained house CLAP.

Training pairs come from the TRAIN songs: for every stem, `caption_variants_per_stem`
captions of its tag list (`caption_variants`, the same thinned reshuffles the CLAP saw)
and `segments_per_stem` random sounding windows of it; every (caption, window) pair of a
stem is an example: (text CLAP embedding, audio CLAP embedding), both (512,) unit norm.
Embeddings are computed once with the house CLAP through `EmbeddingCache`, so a rerun
or a resume costs nothing. The bridge learns the audio embedding with the EDM loss
(normalised units, see `ClapBridge`), the text dropped for `text_dropout` of examples.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from sideman.data.audio import load_audio
from sideman.data.layouts import read_multitrack
from sideman.data.multitrack import BLOCK, Song, Stem, default_cache_dir
from sideman.models.bridge import PRESETS, ClapBridge
from sideman.models.clap import EmbeddingCache
from sideman.models.clap_house import HouseClap, HouseClapEmbedder, MiniLMEncoder
from sideman.models.edm import EDMLoss
from sideman.training.stages import BridgeStage
from sideman.training.train_clap import caption_variants, sounding_block_starts, split_songs
from sideman.training.trainer import TrainConfig, Trainer, make_loader


def segment_starts(stem: Stem, song_frames: int, clip_samples: int, count: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Up to `count` distinct sounding window starts of a stem, in samples (multiples of BLOCK)."""
    blocks = sounding_block_starts(stem, song_frames, clip_samples)
    if len(blocks) == 0:
        return np.zeros(0, dtype=np.int64)
    picks = rng.choice(len(blocks), size=min(count, len(blocks)), replace=False)
    return np.sort(blocks[picks]).astype(np.int64) * BLOCK


def embed_windows(embedder: HouseClapEmbedder, cache: EmbeddingCache, path: Path,
                  starts: Sequence[int]) -> np.ndarray:
    """Audio CLAP embeddings (len(starts), 512) of windows of one file (read once)."""
    if len(starts) == 0:
        return np.zeros((0, embedder.dim), np.float32)
    clip = embedder.clip_samples
    audio = load_audio(path, int(starts[0]), int(starts[-1]) - int(starts[0]) + clip)
    clips = [audio[:, s - starts[0]:s - starts[0] + clip] for s in starts]
    return cache.embed_audio(embedder, clips)


@dataclass
class StemEmbeddings:
    """Embeddings of the stems of one split: text (T, 512), audio (A, 512) and, per stem,
    which rows are its captions and its windows."""

    keys: list[str] = field(default_factory=list)      # "<song_id>/<stem name>"
    tags: list[tuple[str, ...]] = field(default_factory=list)
    text: list[np.ndarray] = field(default_factory=list)    # per stem (V, 512)
    audio: list[np.ndarray] = field(default_factory=list)   # per stem (W, 512)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (caption, window) pair of every stem: text (P, 512), audio (P, 512)."""
        t = [np.repeat(tx, len(au), axis=0) for tx, au in zip(self.text, self.audio)]
        a = [np.tile(au, (len(tx), 1)) for tx, au in zip(self.text, self.audio)]
        return np.concatenate(t), np.concatenate(a)


def embed_stems(embedder: HouseClapEmbedder, cache: EmbeddingCache, songs: Sequence[Song],
                segments: int, variants: int, seed: int = 0, progress: bool = True) -> StemEmbeddings:
    """House CLAP embeddings of `variants` captions and `segments` windows of each stem
    that sounds for a whole clip. Window choice is deterministic in (seed, stem)."""
    out = StemEmbeddings()
    todo = [(song, stem) for song in songs for stem in song.stems]
    for song, stem in tqdm(todo, desc="CLAP embeddings", unit="stem", disable=not progress):
        key = f"{song.song_id}/{stem.name}"
        rng = np.random.default_rng([seed, *key.encode()])
        starts = segment_starts(stem, song.frames, embedder.clip_samples, segments, rng)
        if len(starts) == 0:
            continue
        out.keys.append(key)
        out.tags.append(tuple(stem.tags))
        out.text.append(cache.embed_text(embedder, caption_variants(stem.tags, variants, seed)))
        out.audio.append(embed_windows(embedder, cache, stem.path, starts))
    if not out.keys:
        raise ValueError("no stem sounds for a whole CLAP clip")
    return out


def house_embedder(clap_model_path: str | os.PathLike, cache_dir: Path,
                   text_encoder: MiniLMEncoder | None = None) -> HouseClapEmbedder:
    """The house CLAP as an embedder, its MiniLM sentences kept under cache_dir/minilm."""
    return HouseClapEmbedder(HouseClap.load(clap_model_path),
                             text_encoder=text_encoder or MiniLMEncoder(cache_dir=cache_dir / "minilm"))


class EmbeddingPairs(Dataset):
    """(text (512,), normalised audio (512,)) rows as {'text', 'audio'} float32 tensors."""

    def __init__(self, text: Tensor, audio: Tensor):
        if len(text) != len(audio):
            raise ValueError("text and audio rows differ in number")
        self.text, self.audio = text, audio

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, index: int) -> dict:
        return {"text": self.text[index], "audio": self.audio[index]}


@dataclass
class BridgeObjective:
    """The trainer's loss_fn: EDM loss on normalised audio embeddings given the text, the
    text replaced by the learned null vector for a `text_dropout` fraction of examples."""

    text_dropout: float = 0.1
    loss: EDMLoss = field(default_factory=EDMLoss)

    def __call__(self, model: nn.Module, batch: dict) -> tuple[Tensor, dict]:
        x0, text = batch["audio"], batch["text"]
        keep = torch.rand(x0.shape[0], device=x0.device) >= self.text_dropout
        loss = self.loss(model, x0, text=text, keep=keep).mean()
        return loss, {"loss": loss.detach()}


def gap_cosines(bridge: ClapBridge, emb: StemEmbeddings, steps: int = 32, seed: int = 0) -> dict[str, float]:
    """Mean cosine to each stem's first window of: its full-caption text embedding, one
    bridge sample from that text, and its other windows (stems with >= 2 windows)."""
    rows = [i for i, a in enumerate(emb.audio) if len(a) >= 2]
    if not rows:
        return {}
    ref = np.stack([emb.audio[i][0] for i in rows])
    text = np.stack([emb.text[i][0] for i in rows])
    sample = bridge.sample(text, 1, steps, seed)[:, 0]
    other = np.mean([float(np.mean(emb.audio[i][1:] @ emb.audio[i][0])) for i in rows])
    return {"text": float(np.mean(np.sum(text * ref, 1))), "bridge": float(np.mean(np.sum(sample * ref, 1))),
            "other_windows": float(other)}


def train_bridge(clap_model_path: str | os.PathLike, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 stage: BridgeStage = BridgeStage(), *, seed: int = 0, resume: bool = True, until: int | None = None,
                 layout: str = "auto", cache_dir: str | os.PathLike | None = None,
                 text_encoder: MiniLMEncoder | None = None, progress: bool = True) -> Path:
    """Train a bridge for the house CLAP at `clap_model_path` with the settings of `stage`;
    returns out_dir/bridge.pt.

    Writes bridge.pt (EMA weights; `ClapBridge.load`; meta names the CLAP it belongs to),
    last.pt, log.csv, loss.png and summary.json (steps, seconds, final loss, and on
    validation songs the mean cosine to real audio embeddings of text, bridge samples
    and other windows). `resume` continues from last.pt; `until` stops early at that
    step. `cache_dir` as in `train_house_clap`.
    """
    st = stage
    if st.preset not in PRESETS:
        raise ValueError(f"unknown preset {st.preset!r}: choose from {', '.join(PRESETS)}")
    cfg = PRESETS[st.preset]
    if st.text_dropout is not None:
        cfg = type(cfg)(**{**cfg.to_dict(), "text_dropout": st.text_dropout})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    started = time.time()
    data = read_multitrack(data_dir, layout, progress=progress)
    embedder = house_embedder(clap_model_path, cache, text_encoder)
    emb_cache = EmbeddingCache(cache / "clap")
    train = embed_stems(embedder, emb_cache, split_songs(data.songs, "train", st.validation_fraction),
                        st.segments_per_stem, st.caption_variants_per_stem, seed, progress)
    text, audio = (torch.from_numpy(a) for a in train.pairs())
    torch.manual_seed(seed)
    bridge = ClapBridge(cfg)
    bridge.fit_normalisation(np.concatenate(train.audio))
    with torch.no_grad():
        dataset = EmbeddingPairs(text, bridge.normalise(audio))
    loader = make_loader(dataset, min(st.batch_size, len(dataset)), seed=seed)
    train_cfg = TrainConfig(out_dir=str(out), total_steps=st.steps, lr=st.lr, warmup_steps=min(st.warmup, st.steps),
                            ema_decay=st.ema_decay, log_every=st.log_every, ckpt_every=st.ckpt_every, seed=seed,
                            resume=resume, progress=progress)
    trainer = Trainer(bridge, BridgeObjective(cfg.text_dropout), loader, train_cfg)
    trainer.fit(until)
    final = trainer.ema.module
    path = out / "bridge.pt"
    final.save(path, clap=embedder.model_id, preset=st.preset, steps=trainer.step)
    summary = {"preset": st.preset, "steps": trainer.step, "total_steps": st.steps, "batch_size": st.batch_size,
               "train_stems": len(train.keys), "train_pairs": len(dataset),
               "parameters": sum(p.numel() for p in final.parameters()),
               "final_loss": trainer.history[-1]["loss"] if trainer.history else None}
    val_songs = split_songs(data.songs, "validation", st.validation_fraction)
    if val_songs:
        val = embed_stems(embedder, emb_cache, val_songs, 2, 1, seed, progress)
        summary["validation_cosine"] = gap_cosines(final, val, seed=seed)
    summary["seconds"] = round(time.time() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return path
