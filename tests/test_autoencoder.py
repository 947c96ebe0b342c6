"""The stereo consistency autoencoder: representation, shapes and rates, chunk causality,
bottleneck, decoding assembly (no seams) and arbitrary lengths. Tiny preset, 1 thread."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sideman.models.autoencoder import (PRESETS, Autoencoder, AutoencoderConfig, Bottleneck,
                                        load_autoencoder, save_autoencoder, to_chunks)
from sideman.models.stft import SpectralTransform, compress, decompress

SR = 48000
CHUNK = PRESETS["tiny"].chunk_samples


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


@pytest.fixture(scope="module")
def tiny() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(PRESETS["tiny"]).eval()


def tones(samples: int, seed: int = 0) -> torch.Tensor:
    """(1, 2, samples) band-limited stereo test signal: a few partials per channel, an
    amplitude envelope and different phases left/right."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    out = np.zeros((2, samples))
    for ch in range(2):
        for f in rng.uniform(60, 16000, 6):
            out[ch] += rng.uniform(0.02, 0.1) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
    out *= 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    return torch.from_numpy(out.astype(np.float32))[None]


def test_presets_and_rates():
    for cfg in PRESETS.values():
        assert cfg.latent_hop == 4096 and cfg.latent_dim == 64 and cfg.sample_rate == 48000
        assert cfg.frames_per_latent == 8                       # hop 512 -> 8 frames/latent
        assert 2 * cfg.latent_hop / cfg.latent_dim == 128       # 128x compression
        assert 117 % cfg.chunk_latents == 0                     # 10-s windows are whole chunks
    assert SR / PRESETS["small"].latent_hop == pytest.approx(11.72, abs=0.01)


def test_compression_is_invertible():
    x = torch.randn(3, 50, dtype=torch.complex64) * 10
    y = compress(x, 0.65, 0.34)
    assert torch.allclose(y.abs(), 0.34 * x.abs() ** 0.65, rtol=1e-4)
    assert torch.allclose(torch.angle(y), torch.angle(x), atol=1e-5)
    assert torch.allclose(decompress(y, 0.65, 0.34), x, rtol=1e-4, atol=1e-5)


def test_stft_round_trip_is_exact():
    transform = SpectralTransform()
    x = tones(4 * CHUNK)
    spec = transform(x)
    assert spec.shape == (1, 4, 1024, 4 * CHUNK // 512)
    y = transform.inverse(spec, length=4 * CHUNK - 100)
    assert y.shape == (1, 2, 4 * CHUNK - 100)
    assert (y - x[..., :4 * CHUNK - 100]).abs().max() < 1e-4


def test_piecewise_analysis_matches_whole():
    transform = SpectralTransform()
    x = tones(2 * CHUNK, seed=1)
    context = torch.nn.functional.pad(x, (1024, 1024))
    whole = transform(x)
    second = transform.frames(context[..., CHUNK:2 * CHUNK + 2048])
    assert torch.allclose(second, whole[..., CHUNK // 512:], atol=1e-5)


def test_shapes_and_lengths(tiny):
    window = tiny.encode(tones(117 * 4096))                    # the paper's 10-s window
    assert window.shape == (1, 64, 117)
    ten = tones(10 * SR)
    z = tiny.encode(torch.cat([ten, ten.flip(-1)]))             # batch of two
    assert z.shape == (2, 64, 120)                              # 40 whole chunks of 3
    audio = tiny.decode(z, length=10 * SR)
    assert audio.shape == (2, 2, 10 * SR) and torch.isfinite(audio).all()
    assert tiny.latent_frames(10 * SR) == 120 and tiny.padded_length(10 * SR) == 40 * CHUNK


@pytest.mark.parametrize("seconds", [1.0, 10.0])
def test_arbitrary_lengths_round_trip(tiny, seconds):
    n = int(seconds * SR) + 123                                 # not a multiple of anything
    x = tones(n, seed=2)
    z = tiny.encode(x)
    assert z.shape[-1] == 3 * math.ceil(n / CHUNK)
    for steps in (1, 2):
        y = tiny.decode(z, length=n, steps=steps)
        assert y.shape == (1, 2, n) and torch.isfinite(y).all()


def test_encoding_is_chunk_causal_and_chunk_local(tiny):
    cfg = tiny.cfg
    x = tones(4 * CHUNK, seed=3)
    base = tiny.encode(x)
    later = x.clone()
    later[..., 2 * CHUNK + cfg.lookahead:] += 0.3 * torch.randn_like(later[..., 2 * CHUNK + cfg.lookahead:])
    changed = tiny.encode(later)
    assert torch.equal(changed[..., :6], base[..., :6])          # chunks 0 and 1 untouched
    assert (changed[..., 6:] - base[..., 6:]).abs().max() > 1e-3
    earlier = x.clone()
    earlier[..., :CHUNK - 1024] = 0.0                            # outside chunk 1's STFT halo
    assert torch.allclose(tiny.encode(earlier)[..., 3:], base[..., 3:], atol=1e-6)


def test_batching_and_segmenting_do_not_change_latents(tiny):
    x = torch.cat([tones(5 * CHUNK, seed=4), tones(5 * CHUNK, seed=5)])
    whole = tiny.encode(x, chunk_batch=64)
    assert torch.allclose(tiny.encode(x, chunk_batch=2), whole, atol=1e-5)
    assert torch.allclose(tiny.encode(x[1:]), whole[1:], atol=1e-5)


def unzeroed(seed: int) -> Autoencoder:
    """A tiny model whose AdaLN-Zero layers are random, so that its output depends on the
    latents (at init it does not: the output layer is zero, as in DiT)."""
    torch.manual_seed(seed)
    model = Autoencoder(PRESETS["tiny"])
    for p in model.cm.parameters():
        if p.abs().max() == 0:
            torch.nn.init.normal_(p, std=0.05)
    return model


def test_decoding_is_chunk_causal():
    model = unzeroed(1).eval()
    z = model.encode(tones(4 * CHUNK, seed=6))
    for steps in (1, 2):
        a = model.decode(z, steps=steps)
        z2 = z.clone()
        z2[..., 6:] = -z2[..., 6:]                               # change chunks 2 and 3
        b = model.decode(z2, steps=steps)
        border = 2 * CHUNK - 1024                                # frames of chunk 2 start here
        assert torch.equal(a[..., :border], b[..., :border])
        assert (a[..., 2 * CHUNK:] - b[..., 2 * CHUNK:]).abs().max() > 0


def test_bottleneck_is_bounded_and_penalty_is_a_band():
    b = Bottleneck(3.0, 0.5, 1.5)
    y = torch.randn(4, 64, 30) * 100
    assert b(y).abs().max() <= 3.0
    assert b.penalty(torch.randn(8, 64, 300)) == 0                 # RMS 1: inside the band
    assert b.penalty(torch.randn(8, 64, 300) * 4) > 0.5            # too wide
    assert b.penalty(torch.randn(8, 64, 300) * 0.1) > 0.5          # collapsing


class _Oracle:
    """Stands in for the consistency model in :meth:`Autoencoder._sample`: features carry
    the chunk index, and the 'denoised' chunk is the true spectrogram chunk plus an error
    of fixed relative size that is independent from chunk to chunk and from step to step."""

    def __init__(self, spec: torch.Tensor, chunk_frames: int, error: float) -> None:
        self.chunks = to_chunks(spec, chunk_frames)               # (n, 4, bins, cf)
        self.cf, self.error, self.calls = chunk_frames, error, 0
        self.gen = torch.Generator().manual_seed(0)

    def __call__(self, x, sigma, features):
        rows = []
        for i in range(x.shape[0]):                                # windows batched (parallel mode)
            outs = []
            for w in range(sigma.shape[1]):
                k = int(features[i, w, 0, 0])
                clean = self.chunks[k][None]
                if float(sigma[i, w]) <= 0.0021:                  # f(x, sigma_min) = x
                    outs.append(x[i:i + 1, ..., w * self.cf:(w + 1) * self.cf])
                    continue
                noise = torch.randn(clean.shape, generator=self.gen) * clean.std() * self.error
                outs.append(clean + noise)
            rows.append(torch.cat(outs, dim=-1))
        self.calls += 1
        return torch.cat(rows)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
@pytest.mark.parametrize("steps", [1, 2])
def test_decoding_assembly_is_exact_and_has_no_seams(tiny, steps, mode, monkeypatch):
    """Analytic seam check: with an oracle consistency model, decoding returns the input
    (zero error) and independent per-chunk errors are not amplified at chunk borders:
    the error energy within 1024 samples of a border is at most 1.5x the energy elsewhere."""
    cfg = tiny.cfg
    n_chunks = 12
    x = tones(n_chunks * CHUNK, seed=7)
    spec = tiny.transform(x)
    features = torch.arange(n_chunks, dtype=torch.float32)[None, :, None, None].expand(
        1, n_chunks, cfg.tokens_per_chunk, cfg.width)
    monkeypatch.setattr(tiny.decoder, "forward", lambda z: features)
    exact = _Oracle(spec, cfg.chunk_frames, 0.0)
    monkeypatch.setattr(tiny, "denoise", exact)
    y = tiny.decode(torch.zeros(1, 64, 3 * n_chunks), steps=steps, mode=mode)
    assert (y - x).abs().max() < 1e-4
    if mode == "sequential":
        assert exact.calls == n_chunks + (1 if steps == 2 else 0)
    else:  # one batched call per pass (the first chunk's refinement is its own call)
        assert exact.calls == (3 if steps == 2 else 1)

    monkeypatch.setattr(tiny, "denoise", _Oracle(spec, cfg.chunk_frames, 0.3))
    err = (tiny.decode(torch.zeros(1, 64, 3 * n_chunks), steps=steps, mode=mode) - x).square().sum(1)[0]
    pos = torch.arange(err.shape[-1]) % CHUNK
    near = (pos < 1024) | (pos >= CHUNK - 1024)
    inner = slice(CHUNK, (n_chunks - 1) * CHUNK)                # away from the signal's ends
    ratio = err[inner][near[inner]].mean() / err[inner][~near[inner]].mean()
    assert 0.5 < ratio < 1.5


def test_training_forward_and_gradients():
    model = unzeroed(0)
    x = tones(2 * CHUNK, seed=8).expand(2, -1, -1)
    sigma = torch.tensor([[2.0, 0.5], [10.0, 0.02]])
    noise = torch.randn(2, 4, 1024, 2 * model.cfg.chunk_frames)
    out = model(x, sigma, sigma * 0.9, noise)
    assert out["student"].shape == noise.shape and out["y"].shape == (2, 64, 6)
    assert not out["teacher"].requires_grad
    out["student"].square().mean().backward()
    enc = model.encoder.out.weight.grad
    assert enc is not None and enc.abs().sum() > 0                # the encoder learns end to end
    # boundary condition: f(x, sigma_min) = x exactly
    feats = model.decoder(model.encode(x))
    xs = torch.randn_like(noise)
    assert torch.allclose(model.denoise(xs, torch.full((2, 2), 0.002), feats), xs, atol=1e-6)


def test_save_and_load_round_trip(tmp_path, tiny):
    save_autoencoder(tiny, tmp_path / "ae.pt", step=3)
    loaded = load_autoencoder(tmp_path / "ae.pt")
    assert loaded.cfg == tiny.cfg
    x = tones(CHUNK, seed=9)
    assert torch.equal(loaded.encode(x), tiny.encode(x))


def test_config_rejects_untileable_patches():
    with pytest.raises(ValueError):
        AutoencoderConfig(freq_patch=100)
