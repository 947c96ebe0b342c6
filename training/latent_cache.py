"""Latent cache: every stem and the full mix of every song, encoded once.

What is cached, and why:

- For each song, the latents of each full stem and of the full mix (the sum of all the
  song's stems), stacked as one float16 array ``(stems + 1, 64, T)`` in
  ``latents/<nnnnn>_<song>.npy`` (the mix last), ``T = 3 ceil(samples / 12288)``.
  Target latents of training pairs are slices of a stem's row.
- The encoder sees one chunk (3 latents, 12288 samples) at a time, so a slice that starts
  on a chunk border (a multiple of 3 latent frames) holds the latents of that audio window
  encoded on its own, up to the STFT halo at the window's edges (1024 samples before and
  512 after). Slices must start on chunk borders: the decoder reads the latents three by
  three, and a shifted grid would mix two chunks' summary embeddings.
- Context latents must be the latents of the context MIX (the encoder is nonlinear, so
  the latents of a sum are not the sum of latents). A context is a random subset of the
  other stems, too many to cache, so :func:`encode_context_window` encodes mixes on the
  fly (or once per fixed set of pairs); the cached full mix serves full-song contexts,
  listening and latent statistics.

Files: ``cache.json`` (checkpoint and model settings, written first; a cache is never
mixed with another checkpoint), ``index.json`` (songs, stem names, lengths, split, written
last), ``latents/``. Each song file is written to a temporary name and renamed, so an
interrupted run leaves only complete files and a re-run skips them. Encoding is
deterministic, so a resumed cache is identical to an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from sideman.data.files import atomic_write, atomic_writer, remove_partial_writes
from sideman.data.audio import SAMPLE_RATE, load_audio
from sideman.data.layouts import read_multitrack
from sideman.data.pairs import song_split
from sideman.models.autoencoder import Autoencoder, load_autoencoder
from sideman.training.ae_training import split_songs

__all__ = ["encode_corpus", "encode_context_window", "encode_file", "decode_latents",
           "LatentCache", "CACHE_FORMAT"]

CACHE_FORMAT = "sideman-latents-1"
MIX = "mix"


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    with atomic_writer(path) as f:
        np.save(f, array)


def _file_name(i: int, song_id: str) -> str:
    return f"{i:05d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', song_id)[:80]}.npy"


@torch.no_grad()
def encode_context_window(model: Autoencoder, audio) -> torch.Tensor:
    """Latents of context mixes: ``audio (2, N)`` or ``(B, 2, N)`` (numpy or torch) ->
    ``(B, 64, T)``. ``N`` should be whole chunks (``model.cfg.chunk_samples``, 12288; a
    10-s window of 117 x 4096 samples is 39 chunks); other lengths are zero-padded."""
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio)
    if x.ndim == 2:
        x = x[None]
    device = next(model.parameters()).device
    return model.encode(x.to(device)).cpu()


def _encode_song(model: Autoencoder, song, device, dtype) -> np.ndarray:
    """``(stems + 1, 64, T)``: each stem, then the sum of all stems."""
    total = None
    rows = []
    for stem in song.stems:
        audio = load_audio(stem.path, 0, song.frames)
        total = audio if total is None else total + audio
        rows.append(model.encode(torch.from_numpy(audio)[None].to(device))[0])
    rows.append(model.encode(torch.from_numpy(total)[None].to(device))[0])
    return torch.stack(rows).cpu().numpy().astype(dtype)


def encode_corpus(checkpoint: str | os.PathLike, data_dir: str | os.PathLike,
                  out_dir: str | os.PathLike, layout: str = "auto", split: str = "all",
                  dtype: str = "float16", device: str = "cpu", limit: int | None = None,
                  progress: bool = True) -> Path:
    """Encode every song of ``data_dir`` (``split``: all, train or validation) into
    ``out_dir``; resumes where a previous run stopped. ``limit`` encodes at most that many
    new songs and returns without the index (an interruption on purpose). Returns the
    path of ``index.json`` (or of ``cache.json`` when stopped by ``limit``)."""
    out = Path(out_dir)
    (out / "latents").mkdir(parents=True, exist_ok=True)
    digest = _sha1(Path(checkpoint))
    model = load_autoencoder(checkpoint, device)
    header = {"format": CACHE_FORMAT, "checkpoint": str(checkpoint), "checkpoint_sha1": digest,
              "model": {k: v for k, v in vars(model.cfg).items()}, "dtype": dtype,
              "data_dir": str(data_dir), "split": split}
    cache_file = out / "cache.json"
    if cache_file.is_file():
        old = json.loads(cache_file.read_text())
        if old.get("checkpoint_sha1") != digest or old.get("dtype") != dtype:
            raise ValueError(f"{out} holds latents of another checkpoint or dtype; "
                             f"use a new folder")
    else:
        atomic_write(cache_file, json.dumps(header, indent=2))
    remove_partial_writes(out / "latents")  # a run killed mid-write leaves its temporary file
    songs = split_songs(read_multitrack(data_dir, layout, progress=progress), split)
    entries, done_now = [], 0
    for i, song in enumerate(tqdm(songs, desc="encoding songs", unit="song", disable=not progress)):
        path = out / "latents" / _file_name(i, song.song_id)
        if not path.is_file():
            if limit is not None and done_now >= limit:
                return cache_file
            _atomic_npy(path, _encode_song(model, song, device, dtype))
            done_now += 1
        entries.append({"song_id": song.song_id, "file": f"latents/{path.name}",
                        "names": [s.name for s in song.stems] + [MIX],
                        "roles": [s.role for s in song.stems] + [MIX],
                        "tags": [list(s.tags) for s in song.stems] + [[]],
                        "samples": song.frames, "frames": model.latent_frames(song.frames),
                        "split": song_split(song.song_id, 0.1)})
    index = {**header, "latent_hop": model.cfg.latent_hop,
             "chunk_latents": model.cfg.chunk_latents, "sample_rate": SAMPLE_RATE,
             "songs": entries}
    atomic_write(out / "index.json", json.dumps(index, indent=1))
    return out / "index.json"


class LatentCache:
    """Read access to a finished cache: ``cache[song_id]`` is the memory-mapped
    ``(stems + 1, 64, T)`` array; :meth:`window` slices one stem on chunk borders."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        index_file = self.root / "index.json"
        if not index_file.is_file():
            raise FileNotFoundError(f"{index_file} missing: the cache is unfinished "
                                    f"(run the encoding again to complete it)")
        self.index = json.loads(index_file.read_text())
        self.songs = {e["song_id"]: e for e in self.index["songs"]}
        self.chunk = int(self.index["chunk_latents"])

    def __len__(self) -> int:
        return len(self.songs)

    def __getitem__(self, song_id: str) -> np.ndarray:
        return np.load(self.root / self.songs[song_id]["file"], mmap_mode="r")

    def window(self, song_id: str, name: str, start: int, frames: int) -> np.ndarray:
        """``(64, frames)`` float32 latents of stem ``name`` (or 'mix') from latent frame
        ``start``; ``start`` and ``frames`` must be multiples of ``chunk_latents``."""
        if start % self.chunk or frames % self.chunk:
            raise ValueError(f"windows must start and end on chunk borders (multiples of "
                             f"{self.chunk} latent frames), got start {start}, frames {frames}")
        entry = self.songs[song_id]
        row = entry["names"].index(name)
        if start + frames > entry["frames"]:
            raise ValueError(f"window [{start}, {start + frames}) is past the song's "
                             f"{entry['frames']} latent frames")
        return np.asarray(self[song_id][row, :, start:start + frames], dtype=np.float32)


def _find_index(path: Path) -> dict | None:
    for folder in (path.parent, path.parent.parent):
        if (folder / "index.json").is_file():
            return json.loads((folder / "index.json").read_text())
    return None


def decode_latents(checkpoint: str | os.PathLike, latents_file: str | os.PathLike,
                   out_wav: str | os.PathLike, stem: str = MIX, steps: int = 2, seed: int = 0,
                   device: str = "cpu") -> Path:
    """Decode a latent file to a 48-kHz stereo WAV (float). ``latents_file``: a ``(64, T)``
    array, or a cached song ``(stems + 1, 64, T)`` whose row ``stem`` (a stem name or
    'mix') is decoded at the song's original length."""
    latents_file = Path(latents_file)
    array = np.load(latents_file)
    samples = None
    if array.ndim == 3:
        index = _find_index(latents_file)
        entry = next((e for e in (index or {}).get("songs", [])
                      if Path(e["file"]).name == latents_file.name), None)
        if entry is None:
            raise ValueError(f"{latents_file}: no index.json entry names its stems")
        if stem not in entry["names"]:
            raise ValueError(f"{latents_file}: no stem '{stem}' (has {', '.join(entry['names'])})")
        array, samples = array[entry["names"].index(stem)], entry["samples"]
    if array.ndim != 2:
        raise ValueError(f"{latents_file}: expected (64, T) or (stems, 64, T) latents")
    model = load_autoencoder(checkpoint, device)
    z = torch.from_numpy(np.asarray(array, dtype=np.float32))[None].to(device)
    audio = model.decode(z, length=samples, steps=steps,
                         rng=np.random.default_rng(seed))[0].cpu().numpy()
    out_wav = Path(out_wav)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out_wav, audio.T, SAMPLE_RATE, subtype="FLOAT")
    return out_wav


def encode_file(checkpoint: str | os.PathLike, audio_file: str | os.PathLike,
                out_npy: str | os.PathLike, device: str = "cpu") -> Path:
    """Encode one audio file (any rate, mono or stereo; read as 48-kHz stereo) to a
    ``(64, T)`` float32 ``.npy``; ``decode_latents`` turns it back into audio."""
    model = load_autoencoder(checkpoint, device)
    audio = load_audio(Path(audio_file))
    z = model.encode(torch.from_numpy(audio)[None].to(device))[0].cpu().numpy()
    out_npy = Path(out_npy)
    out_npy.parent.mkdir(parents=True, exist_ok=True)
    _atomic_npy(out_npy, z.astype(np.float32))
    return out_npy
