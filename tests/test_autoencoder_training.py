"""Consistency training of the autoencoder: the objective, fitting one clip, and a short
run of ``train_autoencoder`` on rendered audio (latent health, resume, export)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from conftest import needs_fluidsynth
from sideman.data.audio import load_audio
from sideman.data.layouts import read_multitrack
from sideman.models.autoencoder import PRESETS, Autoencoder, load_autoencoder
from sideman.training.stages import AutoencoderStage
from sideman.training.ae_training import (AudioWindows, ConsistencyObjective, EpochSampler,
                                          split_songs, train_autoencoder)
from test_autoencoder import tones

TINY = PRESETS["tiny"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


def test_noise_levels_and_step_schedule():
    obj = ConsistencyObjective(total_steps=1000)
    assert obj.index_step() == pytest.approx(0.1)
    obj.set_step(1000)
    assert obj.index_step() == pytest.approx(0.001)
    obj.set_step(500)
    assert obj.index_step() == pytest.approx(0.01)
    torch.manual_seed(0)
    sigma, teacher = obj.sigmas(TINY, (4096, 2), torch.device("cpu"))
    assert (sigma > teacher).all() and (teacher >= TINY.sigma_min - 1e-6).all()
    assert sigma.max() <= TINY.sigma_max + 1e-3 and sigma.min() > TINY.sigma_min


def _one_step_error(model: Autoencoder, x: torch.Tensor) -> float:
    """Relative squared error of the one-step reconstruction from sigma_max (fixed noise)."""
    with torch.no_grad():
        spec = model.transform(x)
        features = model.decoder(model.encode(x))
        noise = torch.randn(spec.shape, generator=torch.Generator().manual_seed(3))
        sigma = torch.full((1, 2), model.cfg.sigma_max)
        out = model.denoise(model.cfg.sigma_max * noise, sigma, features)
        return float((out - spec).square().mean() / spec.square().mean())


def test_tiny_model_overfits_one_clip():
    """At index step du = 1 (the objective's diffusion limit, where ECT starts) the teacher
    is the clean clip; the one-step reconstruction error of that clip must fall at least
    5x in 120 updates (it is 1.0 at initialisation, where the output is ~0)."""
    torch.manual_seed(0)
    model = Autoencoder(TINY)
    x = tones(2 * TINY.chunk_samples, seed=11)
    before = _one_step_error(model, x)
    objective = ConsistencyObjective(total_steps=120, step_start=1.0, step_end=1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    batch = x.expand(4, -1, -1).contiguous()
    for step in range(120):
        objective.set_step(step)
        loss, scalars = objective(model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    after = _one_step_error(model, x)
    assert before == pytest.approx(1.0, abs=0.02)
    assert after < before / 5


def test_epoch_sampler_brings_new_windows():
    sampler = EpochSampler(8, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == list(range(8)) and sorted(second) == list(range(8, 16))
    assert list(EpochSampler(8, seed=1)) == first


@needs_fluidsynth
def test_training_run_keeps_latents_healthy_and_resumes(rendered_corpus, tmp_path):
    """40 updates of the tiny model on rendered songs through ``train_autoencoder`` (the
    default consistency recipe), stopped at 20 and resumed: latents of real audio keep a
    healthy range (overall std 0.3..2, every channel's RMS 0.25..2.5, under 1% beyond 0.9
    of the tanh bound, different inputs give different latents) and the run exports a
    loadable model."""
    out = tmp_path / "run"
    stage = AutoencoderStage(steps=40, batch_size=4, lr=1e-3, warmup=5, ema_decay=0.99, log_every=10,
                             ckpt_every=10, workers=0, denoise_weight=0.0, magnitude_weight=0.0,
                             consistency_weight=1.0)  # pure consistency training
    kw = dict(stage=stage, config=TINY, progress=False)
    train_autoencoder(rendered_corpus, out, until=20, **kw)
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 20
    path = train_autoencoder(rendered_corpus, out, **kw)
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    model = load_autoencoder(path)
    data = read_multitrack(rendered_corpus)
    song = data.songs[0]
    audio = [load_audio(s.path, 0, 5 * 48000) for s in song.stems]
    z = model.encode(torch.from_numpy(np.stack(audio + [sum(audio)])))
    bound = model.cfg.latent_bound
    rms = z.square().mean(dim=(0, 2)).sqrt()                      # per channel
    assert 0.3 < float(z.std()) < 2.0
    assert 0.25 < float(rms.min()) and float(rms.max()) < 2.5
    assert float((z.abs() > 0.9 * bound).float().mean()) < 0.01
    assert float(z.std(dim=0).mean()) > 1e-3                      # inputs are told apart
    windows = AudioWindows(split_songs(data, "all"), 2 * TINY.chunk_samples, seed=0)
    assert windows[3].shape == (2, 2 * TINY.chunk_samples)
    assert torch.equal(windows[3], windows[3])                    # a pure function of i
