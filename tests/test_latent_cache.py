"""The latent cache: contents, chunk-border windows, decoding for listening, and resuming
an interrupted encoding with byte-identical results."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_fixtures import write
from sideman.models.autoencoder import PRESETS, Autoencoder, load_autoencoder, save_autoencoder
from sideman.training.latent_cache import (LatentCache, decode_latents, encode_context_window,
                                           encode_corpus, encode_file)

SR = 48000
LENGTHS = (2.0, 1.3, 2.6)          # seconds per song


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Three songs of two stems (folder layout) and a tiny checkpoint whose output layers
    are random (so decoding depends on the latents)."""
    root = tmp_path_factory.mktemp("cache")
    for i, seconds in enumerate(LENGTHS):
        rng = np.random.default_rng(i)
        t = np.arange(int(seconds * SR)) / SR
        for stem, freq in (("bass", 80.0 * (i + 1)), ("keys", 523.0 + 100 * i)):
            audio = 0.2 * np.sin(2 * np.pi * freq * t)[:, None] * np.array([[1.0, 0.5]])
            write(root / "data" / f"song{i}" / f"{stem}.wav",
                  (audio + 0.005 * rng.standard_normal(audio.shape)).astype(np.float32))
    torch.manual_seed(0)
    model = Autoencoder(PRESETS["tiny"])
    for p in model.cm.parameters():
        if p.abs().max() == 0:
            torch.nn.init.normal_(p, std=0.05)
    save_autoencoder(model, root / "ae.pt")
    return root


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cache_contents_and_windows(setup):
    index = encode_corpus(setup / "ae.pt", setup / "data", setup / "full", progress=False)
    cache = LatentCache(index.parent)
    assert len(cache) == 3
    model = load_autoencoder(setup / "ae.pt")
    for i, seconds in enumerate(LENGTHS):
        entry = cache.songs[f"song{i}"]
        samples = int(seconds * SR)
        frames = 3 * math.ceil(samples / 12288)
        assert entry["names"] == ["bass", "keys", "mix"] and entry["samples"] == samples
        array = cache[f"song{i}"]
        assert array.shape == (3, 64, frames) and array.dtype == np.float16
        stems = [sf.read(setup / "data" / f"song{i}" / f"{n}.wav", dtype="float32")[0].T
                 for n in ("bass", "keys")]
        mix = encode_context_window(model, stems[0] + stems[1])[0].numpy()
        assert np.allclose(cache.window(f"song{i}", "mix", 0, frames), mix, atol=2e-3)
        assert np.allclose(array[1].astype(np.float32),
                           encode_context_window(model, stems[1])[0].numpy(), atol=2e-3)
    with pytest.raises(ValueError, match="chunk borders"):
        cache.window("song0", "bass", 1, 3)


def test_interrupted_encoding_resumes_identically(setup):
    full = setup / "full_ref"
    encode_corpus(setup / "ae.pt", setup / "data", full, progress=False)
    part = setup / "resumed"
    stopped = encode_corpus(setup / "ae.pt", setup / "data", part, limit=1, progress=False)
    assert stopped.name == "cache.json" and not (part / "index.json").exists()
    assert len(list((part / "latents").glob("*.npy"))) == 1
    with pytest.raises(FileNotFoundError, match="unfinished"):
        LatentCache(part)
    (part / "latents" / ".00001_song1.npy.k2j3h4.tmp").write_bytes(b"half-written")  # a crash mid-write
    encode_corpus(setup / "ae.pt", setup / "data", part, progress=False)
    ref, got = _files(full), _files(part)
    assert got.keys() == ref.keys()                              # the stray temp file is gone
    assert all(got[k] == ref[k] for k in ref)                    # byte-identical


def test_cache_refuses_another_checkpoint(setup, tmp_path):
    out = tmp_path / "c"
    encode_corpus(setup / "ae.pt", setup / "data", out, limit=1, progress=False)
    torch.manual_seed(1)
    save_autoencoder(Autoencoder(PRESETS["tiny"]), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="another checkpoint"):
        encode_corpus(tmp_path / "other.pt", setup / "data", out, progress=False)


def test_decode_for_listening(setup, tmp_path):
    index = encode_corpus(setup / "ae.pt", setup / "data", setup / "full", progress=False)
    entry = json.loads(index.read_text())["songs"][1]
    wav = decode_latents(setup / "ae.pt", index.parent / entry["file"], tmp_path / "a.wav",
                         stem="keys")
    audio, sr = sf.read(wav)
    assert sr == SR and audio.shape == (entry["samples"], 2) and np.isfinite(audio).all()
    npy = encode_file(setup / "ae.pt", setup / "data" / "song2" / "bass.wav", tmp_path / "b.npy")
    z = np.load(npy)
    assert z.shape == (64, 3 * math.ceil(int(2.6 * SR) / 12288))
    audio, _ = sf.read(decode_latents(setup / "ae.pt", npy, tmp_path / "b.wav"))
    assert audio.shape == (z.shape[1] * 4096, 2)
    with pytest.raises(ValueError, match="no stem"):
        decode_latents(setup / "ae.pt", index.parent / entry["file"], tmp_path / "c.wav",
                       stem="drums")
