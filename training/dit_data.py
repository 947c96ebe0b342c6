"""Training data for the DiT: pairs in latent space, encoded once and kept on disk.

A DiT pair is (target latents, context latents, CLAP embedding, caption). The context
latents must be the autoencoder's latents of the context MIX (the encoder is nonlinear, so
they cannot be summed from per-stem latents), and a context is a random subset of the
other stems, so pairs are drawn by the audio pair sampler (data.pairs: no vocals as target,
context never holds the target, CLAP segment never overlaps the target window), encoded,
and stored:

    OUT/pairs.json          settings, autoencoder and CLAP identity, latent scale, count
    OUT/shard_NNNNN.npz     target, context (N, 64, T) float16; clap (N, 512) float32;
                            caption, song_id (N,) strings

`latent_scale` makes the stored latents' RMS equal EDM's sigma_data (0.5); the DiT and the
bundle work in scaled units and the engine divides by it before decoding.
Building resumes shard by shard (atomic writes) and is deterministic for a seed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from sideman.data.files import atomic_write, atomic_writer
from sideman.data.layouts import read_multitrack
from sideman.data.pairs import PairConfig, PairSampler

SIGMA_DATA = 0.5
FORMAT = "sideman-dit-pairs-1"


def _atomic_savez(path: Path, **arrays) -> None:
    with atomic_writer(path) as f:
        np.savez(f, **arrays)


class NumpyCodec:
    """A torch-free codec (numerics.band_codec.BandCodec, or a bundle's ONNX codec) behind
    the interface build_pair_latents uses: chunk_samples, latent_channels, encode((B, 2, N)
    tensor) -> (B, C, T) tensor."""

    def __init__(self, codec, chunk_samples: int, latent_channels: int):
        self.codec, self.chunk_samples, self.latent_channels = codec, chunk_samples, latent_channels

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.codec.encode(audio.numpy()), np.float32))


def build_pair_latents(autoencoder, clap_embedder, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       pairs: int, seconds: float = 10.0, clap_seconds: float = 10.0, seed: int = 0,
                       split: str = "train", shard_size: int = 64, progress: bool = True,
                       part: tuple[int, int] = (0, 1), threads: int | None = None) -> Path:
    """Encode `pairs` training pairs into `out_dir`; returns it. Existing shards are kept.
    `part` (i, n): encode only the shards whose index is i modulo n (n processes share the
    work); pairs.json is written by whichever finds every shard present. `threads`: torch's
    thread count for this process (one per process when several share the cores).

    autoencoder: the codec, a models.autoencoder.Autoencoder, a
    models.spectral_codec.SpectralCodec or a NumpyCodec (encode (B, 2, N) -> (B, C, T) for
    N a multiple of its chunk_samples);
    clap_embedder: a models.clap.ClapEmbedder (embed_audio (B, 2, S) -> (B, 512)).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hop = autoencoder.chunk_samples
    seconds = max(1, round(seconds * 48000 / hop)) * hop / 48000  # whole autoencoder chunks
    sampler = PairSampler(read_multitrack(data_dir), PairConfig(seconds=seconds, clap_seconds=clap_seconds,
                                                                seed=seed), split)
    index, parts = part
    if threads is not None:
        torch.set_num_threads(threads)
    if not 0 <= index < parts:
        raise ValueError(f"part must be (i, n) with 0 <= i < n, not {part}")
    n_shards = -(-pairs // shard_size)
    bar = tqdm(total=pairs, desc="encoding DiT pairs", unit="pair", disable=not progress)
    for s in range(n_shards):
        path = out / f"shard_{s:05d}.npz"
        indices = range(s * shard_size, min(pairs, (s + 1) * shard_size))
        if path.is_file() or s % parts != index:
            bar.update(len(indices))
            continue
        items = [sampler.sample(i) for i in indices]
        n = hop * (items[0].target.shape[1] // hop)
        with torch.no_grad():
            target = autoencoder.encode(torch.from_numpy(np.stack([p.target[:, :n] for p in items])))
            context = autoencoder.encode(torch.from_numpy(np.stack([p.context[:, :n] for p in items])))
        clap = clap_embedder.embed_audio(np.stack([p.clap_audio for p in items]))
        _atomic_savez(path, target=target.numpy().astype(np.float16), context=context.numpy().astype(np.float16),
                      clap=clap.astype(np.float32), caption=np.array([p.caption for p in items]),
                      song_id=np.array([p.song_id for p in items]))
        bar.update(len(items))
    bar.close()
    if not all((out / f"shard_{s:05d}.npz").is_file() for s in range(n_shards)):
        return out
    rms = float(np.sqrt(np.mean([np.mean(np.load(p)["target"].astype(np.float32) ** 2)
                                 for p in sorted(out.glob("shard_*.npz"))])))
    meta = {"format": FORMAT, "pairs": pairs, "seconds": seconds, "clap_seconds": clap_seconds,
            "seed": seed, "split": split, "latent_rms": rms, "latent_scale": SIGMA_DATA / max(rms, 1e-6),
            "data": str(data_dir)}
    atomic_write(out / "pairs.json", json.dumps(meta, indent=2))
    return out


class LatentPairs(Dataset):
    """The stored pairs as a map-style dataset of dicts: target, context (C, T) float32,
    scaled to RMS sigma_data; clap (512,)."""

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        try:
            self.meta = json.loads((root / "pairs.json").read_text())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{root} holds no DiT pairs (build them with build_pair_latents)") from exc
        shards = [np.load(p) for p in sorted(root.glob("shard_*.npz"))]
        self.scale = float(self.meta["latent_scale"])
        # Kept as stored (float16: 20,000 band-codec pairs take 5 GB, not 10), scaled per item.
        self.target = torch.from_numpy(np.concatenate([s["target"] for s in shards]))
        self.context = torch.from_numpy(np.concatenate([s["context"] for s in shards]))
        self.clap = torch.from_numpy(np.concatenate([s["clap"] for s in shards]))
        self.caption = [str(c) for s in shards for c in s["caption"]]

    @property
    def channels(self) -> int:
        """C: the codec's latent channels (a DiT trained on these pairs takes as many)."""
        return int(self.target.shape[1])

    @property
    def latent_scale(self) -> float:
        return float(self.meta["latent_scale"])

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {"target": self.target[i].float() * self.scale, "context": self.context[i].float() * self.scale,
                "clap": self.clap[i]}
