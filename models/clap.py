"""One CLAP interface for Sideman, and a disk cache of CLAP embeddings.

Every CLAP model (our compact house model in `clap_house`, the LAION music checkpoint in
`clap_laion`) is used through `ClapEmbedder`:

    emb = load_embedder("house", path="runs/clap/house.pt")
    a = emb.embed_audio(audio)                 # (N, 512) float32, unit L2 norm
    t = emb.embed_text(["low walking bass"])   # (N, 512) float32, unit L2 norm

Audio is float32 at 48 kHz, given as an array (N, C, S) (C channels, usually 2), an array
(N, S) of mono clips, or a sequence of clips of any lengths, each (S,) or (C, S). Stereo
is downmixed to mono by the channel mean, as CLAP does. Our code, not the model, fixes
the length, so the result is deterministic: a clip longer than the model's window
(`clip_seconds`, 10 s by default) is cropped at its centre (or at its start), a shorter
one is repeat-padded (whole copies of the clip, then zeros; LAION-CLAP's 'repeatpad') or
zero-padded. There is no resampling: the caller delivers 48 kHz.

`EmbeddingCache` keeps one .npy file per embedding under a directory ($SIDEMAN_CACHE/clap
by default), named by the SHA-256 of the embedder's identity (model, window, crop and pad
rules) and the content (the exact mono samples the model sees, or the text), written
through a temporary file, fsync and `os.replace`, so an interrupted run never leaves a
half-written entry behind.

    cache = EmbeddingCache()
    a = cache.embed_audio(emb, clips)         # computes only what is not on disk yet
"""
from __future__ import annotations

import abc
import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sideman.data.files import atomic_writer

SAMPLE_RATE = 48_000
EMBED_DIM = 512
CROPS = ("centre", "start")
PADS = ("repeat", "zero")


def downmix(clip) -> np.ndarray:
    """One clip, (S,) or (C, S), as a mono float32 array (S,): the mean of the channels."""
    x = clip.detach().cpu().numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
    if x.ndim == 2 and x.shape[0] > x.shape[1]:
        raise ValueError(f"clips are channels-first (C, S); got {x.shape} (soundfile reads (S, C): transpose)")
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"a clip is (S,) or (C, S); got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def as_clips(audio) -> Sequence:
    """Split a batch into a sequence of clips without copying.

    (N, C, S) and (N, S) arrays or tensors give their rows; any other sequence (a list of
    clips, or a lazy sequence that loads each item on access) is returned as it is.
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if isinstance(audio, np.ndarray) and audio.ndim not in (2, 3):
        raise ValueError(f"batched audio is (N, S) or (N, C, S); got shape {audio.shape}")
    return audio


def fit_length(clip: np.ndarray, length: int, crop: str = "centre", pad: str = "repeat") -> np.ndarray:
    """A mono clip (S,) cropped or padded to exactly `length` samples.

    crop: 'centre' keeps samples [(S - length) // 2, ...), 'start' keeps the first `length`.
    pad: 'repeat' tiles floor(length / S) whole copies and fills the rest with zeros;
    'zero' appends zeros.
    """
    if crop not in CROPS or pad not in PADS:
        raise ValueError(f"crop must be one of {CROPS}, pad one of {PADS}")
    n = clip.shape[0]
    if n == 0:
        raise ValueError("cannot embed an empty clip")
    if n >= length:
        start = (n - length) // 2 if crop == "centre" else 0
        return np.ascontiguousarray(clip[start:start + length], dtype=np.float32)
    out = np.zeros(length, dtype=np.float32)
    copies = length // n if pad == "repeat" else 1
    out[:copies * n] = np.tile(clip, copies)
    return out


def l2_normalise(x) -> np.ndarray:
    """Rows of (N, D) scaled to unit Euclidean norm, as float32 (an all-zero row stays zero)."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    x = x.astype(np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class ClapEmbedder(abc.ABC):
    """A CLAP model seen as two functions into one 512-d unit sphere.

    Subclasses give `model_id` and the two batch functions `_audio_batch` (mono clips of
    exactly `clip_samples` samples, (B, clip_samples) float32 -> (B, 512)) and
    `_text_batch` (B strings -> (B, 512)); this class does the downmix, the crop or pad,
    the batching and the normalisation.
    """

    sample_rate = SAMPLE_RATE
    dim = EMBED_DIM

    def __init__(self, clip_seconds: float = 10.0, batch_size: int = 16,
                 crop: str = "centre", pad: str = "repeat"):
        if crop not in CROPS or pad not in PADS:
            raise ValueError(f"crop must be one of {CROPS}, pad one of {PADS}")
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.clip_samples = int(round(clip_seconds * SAMPLE_RATE))
        self.batch_size = batch_size
        self.crop = crop
        self.pad = pad

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """Names the model and its weights: equal ids give equal embeddings."""

    @abc.abstractmethod
    def _audio_batch(self, x: np.ndarray):
        """(B, clip_samples) float32 mono at 48 kHz -> (B, 512), any norm."""

    @abc.abstractmethod
    def _text_batch(self, texts: list[str]):
        """B strings -> (B, 512), any norm."""

    @property
    def identity(self) -> str:
        """Everything that decides an embedding besides its input: the cache key's prefix."""
        return f"{self.model_id}|sr={SAMPLE_RATE}|clip={self.clip_samples}|crop={self.crop}|pad={self.pad}"

    def prepare(self, clip) -> np.ndarray:
        """One clip, (S,) or (C, S), as the mono (clip_samples,) float32 the model sees."""
        return fit_length(downmix(clip), self.clip_samples, self.crop, self.pad)

    def embed_audio(self, audio, batch_size: int | None = None) -> np.ndarray:
        """Audio (N, C, S), (N, S) or N clips of any lengths at 48 kHz -> (N, 512) float32."""
        clips = as_clips(audio)
        step = batch_size or self.batch_size
        out = [np.zeros((0, self.dim), np.float32)]
        for i in range(0, len(clips), step):
            batch = np.stack([self.prepare(clips[j]) for j in range(i, min(i + step, len(clips)))])
            out.append(self._checked(self._audio_batch(batch), len(batch)))
        return np.concatenate(out)

    def embed_text(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """N strings -> (N, 512) float32, unit norm."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not one string")
        texts = list(texts)
        step = batch_size or self.batch_size
        out = [np.zeros((0, self.dim), np.float32)]
        for i in range(0, len(texts), step):
            chunk = texts[i:i + step]
            out.append(self._checked(self._text_batch(chunk), len(chunk)))
        return np.concatenate(out)

    def _checked(self, emb, n: int) -> np.ndarray:
        emb = l2_normalise(emb)
        if emb.shape != (n, self.dim):
            raise RuntimeError(f"{self.model_id} returned {emb.shape}, expected {(n, self.dim)}")
        return emb


class EmbeddingCache:
    """Embeddings on disk, one (dim,) float32 .npy per (embedder, content) pair; dim 512 for CLAP.

    Files live at root/ab/<sha256>.npy; root defaults to $SIDEMAN_CACHE/clap (the
    project's cache folder, ~/.cache/sideman when unset). A missing or unreadable file is
    a miss; the embedding is then computed (in batches, misses only) and written atomically.
    """

    def __init__(self, root: str | os.PathLike | None = None, dim: int = EMBED_DIM):
        if root is None:
            root = Path(os.environ.get("SIDEMAN_CACHE", Path.home() / ".cache" / "sideman")) / "clap"
        self.root = Path(root)
        self.dim = dim

    def key(self, identity: str, kind: str, payload: bytes) -> str:
        h = hashlib.sha256()
        for part in (identity.encode(), kind.encode(), payload):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        try:
            v = np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return v if v.shape == (self.dim,) and v.dtype == np.float32 else None

    def put(self, key: str, vec: np.ndarray) -> None:
        dest = self.path(key)
        with atomic_writer(dest) as f:
            np.save(f, np.asarray(vec, dtype=np.float32))

    def embed_audio(self, embedder: ClapEmbedder, audio, batch_size: int | None = None) -> np.ndarray:
        """`embedder.embed_audio(audio)` through the cache: (N, 512) float32.

        Keyed by the mono samples the model sees, so clips that prepare to the same
        window share one entry. Clips are fetched one at a time (a lazy sequence works).
        """
        clips, identity = as_clips(audio), embedder.identity
        keys = [self.key(identity, "audio", embedder.prepare(clips[i]).tobytes()) for i in range(len(clips))]
        return self.fill(keys, lambda idx: embedder.embed_audio([clips[i] for i in idx], batch_size))

    def embed_text(self, embedder: ClapEmbedder, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """`embedder.embed_text(texts)` through the cache: (N, 512) float32."""
        texts, identity = list(texts), embedder.identity
        keys = [self.key(identity, "text", t.encode("utf-8")) for t in texts]
        return self.fill(keys, lambda idx: embedder.embed_text([texts[i] for i in idx], batch_size))

    def fill(self, keys: list[str], compute) -> np.ndarray:
        """(len(keys), dim) float32: cached rows, and `compute(indices)` -> (len(indices), dim)
        for the rows missing (each distinct key once), which are then stored."""
        out = np.zeros((len(keys), self.dim), np.float32)
        missing = []
        for i, k in enumerate(keys):
            v = self.get(k)
            if v is None:
                missing.append(i)
            else:
                out[i] = v
        unique = list({keys[i]: i for i in missing}.values())
        if unique:
            for i, v in zip(unique, compute(unique)):
                self.put(keys[i], v)
                out[i] = v
            by_key = {keys[i]: out[i] for i in unique}
            for i in missing:
                out[i] = by_key[keys[i]]
        return out


def load_embedder(name: str, **kw) -> ClapEmbedder:
    """'house': `HouseClapEmbedder.load(path, ...)`; 'laion': `LaionClapEmbedder.from_checkpoint(checkpoint, ...)`."""
    if name == "house":
        from sideman.models.clap_house import HouseClapEmbedder
        return HouseClapEmbedder.load(**kw)
    if name == "laion":
        from sideman.models.clap_laion import LaionClapEmbedder
        return LaionClapEmbedder.from_checkpoint(**kw)
    raise ValueError(f"unknown CLAP embedder {name!r}: use 'house' or 'laion'")
