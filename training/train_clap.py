"""Train the house CLAP on the stems of a multitrack data set.

An example is (log-mel of a random sounding window of one stem, a caption of that stem):
- stems come from the TRAIN songs only (`song_split`, the same hash split as the pair
  sampler), vocals included (a CLAP should know them);
- a window is `clip_seconds` long (10 s in 'small') and starts where the stem sounds: its
  level is above `silence_db` and at least `min_active` of its 85-ms blocks are too
  (`sounding_starts` over `Stem.activity`), jittered within the block;
- the caption is one of `caption_variants` versions of the stem's tag list: the full
  caption first, then the instrument followed by a random ~75 % of the other tags in a
  random order, so the text tower does not learn one fixed word order;
- pairs sharing a stem share a group in the contrastive loss (`info_nce` groups): two
  windows of one stem, or one stem's caption variants, are never pushed apart.

Features are computed once: the whole stem's log-mel (float16, (frames, n_mels), frame i
centred on sample i * hop) is kept on disk and in memory, and a window starting on a
multiple of the hop is a slice of it. Interior frames equal those `LogMel` computes on the
cut window; only the two edge frames differ (they see real audio instead of zero padding).
The frozen MiniLM sentence embeddings of every caption variant are computed once too.

`train_house_clap` runs the shared `Trainer` (AdamW, warm-up + cosine, EMA, checkpoints,
exact resume, CSV log, loss plot) and saves the EMA weights with `HouseClap.save`.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from sideman.data.files import atomic_writer
from sideman.training.stages import ClapStage
from sideman.data.audio import load_audio
from sideman.data.layouts import read_multitrack
from sideman.data.multitrack import BLOCK, Song, Stem, default_cache_dir
from sideman.data.pairs import song_split, sounding_starts
from sideman.models.clap import SAMPLE_RATE
from sideman.models.clap_house import PRESETS, HouseClap, HouseClapConfig, LogMel, MiniLMEncoder
from sideman.training.contrastive import ContrastiveLoss
from sideman.training.retrieval import retrieval_metrics
from sideman.training.trainer import TrainConfig, Trainer, make_loader

SILENCE_DB = -45.0
MIN_ACTIVE = 0.25


def split_songs(songs: Sequence[Song], split: str, validation_fraction: float = 0.1) -> list[Song]:
    """The songs of one split ('train' or 'validation') by `song_split`'s stable hash."""
    return [s for s in songs if song_split(s.song_id, validation_fraction) == split]


def sounding_block_starts(stem: Stem, song_frames: int, clip_samples: int,
                          silence_db: float = SILENCE_DB, min_active: float = MIN_ACTIVE) -> np.ndarray:
    """Start blocks (units of BLOCK = 4096 samples) of the stem's sounding windows.

    A window covers round(clip_samples / BLOCK) blocks and must end inside the song
    (`song_frames` samples); empty when the stem never sounds for that long.
    """
    n_blocks = song_frames // BLOCK
    blocks = max(1, int(round(clip_samples / BLOCK)))
    starts = sounding_starts(stem.activity[:n_blocks], blocks, silence_db, min_active)
    last = (song_frames - clip_samples) // BLOCK
    return starts[starts <= last]


def caption_variants(tags: Sequence[str], count: int, seed: int = 0) -> list[str]:
    """`count` captions of one tag list: the full caption, then thinned reshuffles.

    Variant 0 is ", ".join(tags). Later ones keep the first tag (the instrument) first and
    each other tag with probability 0.75, in a random order. Deterministic in (tags, seed);
    duplicates are allowed (a two-tag list has few versions).
    """
    tags = list(tags)
    digest = hashlib.sha256(("\x1f".join(tags) + f"|{seed}").encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    out = [", ".join(tags)]
    for _ in range(count - 1):
        rest = [t for t in tags[1:] if rng.random() < 0.75]
        rng.shuffle(rest)
        out.append(", ".join(tags[:1] + rest))
    return out[:count]


class LogMelStore:
    """Whole-file log-mels (frames, n_mels) float16, computed once per file and config.

    Files live at cache_dir/<sha1>.npy ($SIDEMAN_CACHE/logmel by default), keyed by the
    file's path, size and modification time and the features' settings; written atomically.
    """

    def __init__(self, cfg: HouseClapConfig, cache_dir: str | os.PathLike | None = None):
        self.cfg = cfg
        self.logmel = LogMel(cfg)
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "logmel"

    def _file(self, path: Path) -> Path:
        st = Path(path).stat()
        c = self.cfg
        raw = (f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{c.n_fft}|{c.hop}|{c.n_mels}|"
               f"{c.f_min}|{c.f_max}")
        return self.dir / f"{hashlib.sha1(raw.encode()).hexdigest()}.npy"

    @torch.no_grad()
    def compute(self, path: Path) -> np.ndarray:
        """The stem's mono log-mel at 48 kHz: (samples // hop + 1, n_mels) float16."""
        wave = torch.from_numpy(load_audio(Path(path)).mean(axis=0))
        return self.logmel(wave[None])[0].numpy().astype(np.float16)

    def get(self, path: Path) -> np.ndarray:
        file = self._file(path)
        try:
            return np.load(file)
        except (OSError, ValueError, EOFError):
            pass
        mel = self.compute(path)
        with atomic_writer(file, durable=False) as f:
            np.save(f, mel)
        return mel


@dataclass
class ClapStem:
    """One stem ready for training: its log-mel, usable window starts and caption rows."""

    key: str                  # "<song_id>/<stem name>"
    role: str
    tags: tuple[str, ...]
    mel: np.ndarray           # (frames, n_mels) float16, frame i centred on sample i * hop
    starts: np.ndarray        # (W,) usable window start blocks
    caption_rows: np.ndarray  # (V,) rows of the dataset's sentence table


class ClapWindows(Dataset):
    """Random sounding windows of stems with one of their captions.

    `windows_per_stem` items per stem make one epoch. Item i is stem i % n_stems; its
    window start (block + jitter, rounded down to the hop), caption variant and level
    change (uniform in +-`gain_db`, a constant shift of the log-mel) are drawn from the
    global torch RNG, which the trainer seeds and checkpoints, so resuming is exact.
    Items: {'mel': (frames, n_mels) float32, 'sentence': (384,) float32, 'group': int64}.
    """

    def __init__(self, stems: list[ClapStem], sentences: Tensor, cfg: HouseClapConfig,
                 windows_per_stem: int = 4, gain_db: float = 6.0):
        if not stems:
            raise ValueError("no stem has a sounding window long enough for the CLAP clip")
        self.stems, self.sentences, self.gain_db = stems, sentences, gain_db
        self.hop = cfg.hop
        self.frames = int(round(cfg.clip_seconds * SAMPLE_RATE)) // cfg.hop + 1
        self.windows_per_stem = windows_per_stem
        groups: dict[tuple[str, ...], int] = {}
        self.groups = [groups.setdefault(s.tags, len(groups)) for s in stems]

    def __len__(self) -> int:
        return len(self.stems) * self.windows_per_stem

    def window(self, stem: ClapStem, block: int, jitter: float) -> np.ndarray:
        """(frames, n_mels) float32 slice starting near `block` (+ jitter blocks)."""
        first = int((block + jitter) * BLOCK) // self.hop
        first = min(first, stem.mel.shape[0] - self.frames)
        return stem.mel[first:first + self.frames].astype(np.float32)

    def __getitem__(self, index: int) -> dict:
        stem = self.stems[index % len(self.stems)]
        r = torch.rand(3)
        block = int(stem.starts[int(r[0] * len(stem.starts))])
        mel = torch.from_numpy(self.window(stem, block, float(r[1])))
        if self.gain_db:
            mel = mel + (2 * float(r[2]) - 1) * self.gain_db / 30.0   # power x 10^(g/10): log10 / 3
        row = stem.caption_rows[int(torch.randint(len(stem.caption_rows), ()))]
        return {"mel": mel, "sentence": self.sentences[row],
                "group": torch.tensor(self.groups[index % len(self.stems)])}


class ClapTrainee(nn.Module):
    """The house CLAP with its learnable temperature: one module for the trainer."""

    def __init__(self, cfg: HouseClapConfig, temperature: float = 0.07):
        super().__init__()
        self.clap = HouseClap(cfg)
        self.loss = ContrastiveLoss(temperature)

    def forward(self, mel: Tensor, sentence: Tensor, group: Tensor) -> tuple[Tensor, Tensor]:
        """Log-mels (B, frames, n_mels), sentences (B, 384), groups (B,) -> (loss, 1/temperature)."""
        a = nn.functional.normalize(self.clap.audio.from_logmel(mel), dim=-1)
        t = self.clap.encode_text(sentence)
        return self.loss(a, t, group), self.loss.scale


def clap_loss(model: nn.Module, batch: dict) -> tuple[Tensor, dict]:
    """The trainer's loss_fn: symmetric InfoNCE with caption groups."""
    loss, scale = model(batch["mel"], batch["sentence"], batch["group"])
    return loss, {"loss": loss.detach(), "temperature": 1.0 / scale.detach()}


def prepare_stems(songs: Sequence[Song], cfg: HouseClapConfig, store: LogMelStore, variants: int,
                  seed: int, progress: bool = True) -> tuple[list[ClapStem], list[str]]:
    """Every stem with a sounding window, with its log-mel; and the caption table.

    Returns (stems, captions): stem.caption_rows index `captions`.
    """
    clip = int(round(cfg.clip_seconds * SAMPLE_RATE))
    captions: dict[str, int] = {}
    stems = []
    todo = [(song, stem) for song in songs for stem in song.stems]
    for song, stem in tqdm(todo, desc="log-mels", unit="stem", disable=not progress):
        starts = sounding_block_starts(stem, song.frames, clip)
        if len(starts) == 0:
            continue
        rows = [captions.setdefault(c, len(captions)) for c in caption_variants(stem.tags, variants, seed)]
        stems.append(ClapStem(f"{song.song_id}/{stem.name}", stem.role, tuple(stem.tags),
                              store.get(stem.path), starts, np.array(sorted(set(rows)))))
    return stems, list(captions)


@torch.no_grad()
def validation_retrieval(clap: HouseClap, stems: list[ClapStem], sentences: Tensor,
                         frames: int, hop: int) -> dict[str, float]:
    """Text->audio retrieval on fixed windows (each stem's middle sounding window) and full
    captions (caption_rows[0]); relevant = same tag list. {'R@1', 'R@10', ...}."""
    clap.eval()
    mels = []
    for s in stems:
        first = min(int(s.starts[len(s.starts) // 2]) * BLOCK // hop, s.mel.shape[0] - frames)
        mels.append(torch.from_numpy(s.mel[first:first + frames].astype(np.float32)))
    audio = torch.cat([nn.functional.normalize(clap.audio.from_logmel(torch.stack(mels[i:i + 32])), dim=-1)
                       for i in range(0, len(mels), 32)])
    text = clap.encode_text(sentences[[int(s.caption_rows[0]) for s in stems]])
    labels = [s.tags for s in stems]
    return retrieval_metrics(text, audio, labels, labels)


def train_house_clap(data_dir: str | os.PathLike, out_dir: str | os.PathLike, stage: ClapStage = ClapStage(), *,
                     seed: int = 0, resume: bool = True, until: int | None = None, layout: str = "auto",
                     cache_dir: str | os.PathLike | None = None, text_encoder: MiniLMEncoder | None = None,
                     progress: bool = True) -> Path:
    """Train the house CLAP with the settings of `stage` on the train songs of `data_dir`;
    returns out_dir/house_clap.pt.

    `resume` continues from out_dir/last.pt; `until` stops early at that step (as an
    interruption would; rerun to continue). Writes out_dir/house_clap.pt (EMA weights,
    `HouseClap.load` reads it), last.pt, log.csv, loss.png and summary.json (steps,
    seconds, final loss, validation retrieval when the split has songs). `cache_dir` holds
    the log-mels and MiniLM embeddings ($SIDEMAN_CACHE by default); `text_encoder`
    replaces the MiniLM encoder (anything with `encode(list[str]) -> (N, 384)`).
    """
    st = stage
    if st.preset not in PRESETS:
        raise ValueError(f"unknown preset {st.preset!r}: choose from {', '.join(PRESETS)}")
    cfg = PRESETS[st.preset]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    started = time.time()
    data = read_multitrack(data_dir, layout, progress=progress)
    store = LogMelStore(cfg, cache / "logmel")
    text_encoder = text_encoder or MiniLMEncoder(cache_dir=cache / "minilm")

    def build(split: str) -> tuple[list[ClapStem], Tensor]:
        songs = split_songs(data.songs, split, st.validation_fraction)
        stems, captions = prepare_stems(songs, cfg, store, st.caption_variants_per_stem, seed, progress)
        return stems, text_encoder.encode(captions).float() if captions else torch.zeros(0, cfg.text_dim)

    train_stems, train_text = build("train")
    dataset = ClapWindows(train_stems, train_text, cfg, st.windows_per_stem)
    if len(dataset) < st.batch_size:
        raise ValueError(f"{len(dataset)} training windows are fewer than one batch of {st.batch_size}")
    loader = make_loader(dataset, st.batch_size, seed=seed)
    total = st.steps
    train_cfg = TrainConfig(out_dir=str(out), total_steps=total, lr=st.lr, weight_decay=st.weight_decay,
                            warmup_steps=min(st.warmup, max(1, total // 10)), ema_decay=st.ema_decay,
                            log_every=st.log_every, ckpt_every=st.ckpt_every, seed=seed, resume=resume,
                            progress=progress)
    torch.manual_seed(seed)
    trainer = Trainer(ClapTrainee(cfg), clap_loss, loader, train_cfg)
    trainer.fit(until)
    clap = trainer.ema.module.clap
    path = out / "house_clap.pt"
    clap.save(path)
    summary = {"preset": st.preset, "steps": trainer.step, "total_steps": total, "batch_size": st.batch_size,
               "train_stems": len(train_stems), "seconds": round(time.time() - started, 1),
               "parameters": sum(p.numel() for p in clap.parameters()),
               "final_loss": trainer.history[-1]["loss"] if trainer.history else None,
               "temperature": float(trainer.model.loss.temperature)}
    val_stems, val_text = build("validation")
    if val_stems:
        summary["validation"] = validation_retrieval(clap, val_stems, val_text, dataset.frames, cfg.hop)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return path
