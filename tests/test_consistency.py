"""Consistency models: boundary condition, ECT loss pieces, multistep sampling, and a tiny
DiT that overfits two (context, target) pairs (EDM training, then consistency training)."""
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from sideman.models.consistency import ConsistencyLoss, ConsistencyPrecond, DiTConsistencyObjective, pseudo_huber
from sideman.models.dit import PRESETS, ConditionDropout, DiT
from sideman.models.edm import DiTEDMObjective, EDMLoss, EDMPrecond
from sideman.models.sampling import sample
from sideman.numerics.guidance import consistency_levels
from sideman.numerics.sampler import GuidedConsistency, SamplerSettings, sample_latents
from sideman.training.trainer import TrainConfig, Trainer, load_weights

torch.set_num_threads(1)


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x, c_noise, **cond):
        return self.lin(x) * (1 + c_noise[:, None])


def test_boundary_condition_is_exact():
    torch.manual_seed(0)
    f = ConsistencyPrecond(Linear())
    x = torch.randn(5, 16)
    assert torch.equal(f(x, 0.002), x)
    assert not torch.allclose(f(x, 0.5), x)


def test_scalings_approach_edm_at_high_noise():
    net = Linear()
    x = 80.0 * torch.randn(5, 16)
    cm, edm = ConsistencyPrecond(net)(x, 80.0), EDMPrecond(net)(x, 80.0)
    assert torch.allclose(cm, edm, rtol=1e-4, atol=1e-4)


def test_from_edm_copies_the_network():
    edm = EDMPrecond(DiT(PRESETS["tiny"]))
    cm = ConsistencyPrecond.from_edm(edm)
    for a, b in zip(cm.net.parameters(), edm.net.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_pseudo_huber():
    a, b = torch.zeros(2, 100), torch.zeros(2, 100)
    b[0, 0] = 3.0
    c = 0.00054 * 10.0
    expect = torch.tensor([math.sqrt(9.0 + c * c) - c, 0.0])
    assert torch.allclose(pseudo_huber(a, b), expect, atol=1e-6)
    assert torch.allclose(pseudo_huber(a, b, c=1.0), torch.tensor([math.sqrt(10.0) - 1.0, 0.0]))


def test_index_step_schedule_and_sigma_pairs():
    loss = ConsistencyLoss(total_steps=1000)
    assert loss.index_step(0) == pytest.approx(0.1)
    assert loss.index_step(500) == pytest.approx(0.01)
    assert loss.index_step(1000) == pytest.approx(0.001)
    assert loss.index_step(5000) == pytest.approx(0.001)
    s, s_t = loss.sigma_pair(10_000, 0, "cpu", torch.Generator().manual_seed(0))
    assert (s > s_t).all() and (s_t >= 0.002 * (1 - 1e-5)).all() and (s <= 80.0 * (1 + 1e-5)).all()
    a, b = 0.002 ** (1 / 7), 80.0 ** (1 / 7)   # index distance is exactly the step
    du = (s ** (1 / 7) - s_t ** (1 / 7)) / (b - a)
    assert torch.allclose(du, torch.full_like(du, 0.1), atol=1e-4)


def test_multistep_sampling_of_a_gaussian():
    # Data ~ N(mu, s0^2): the exact consistency function is known in closed form.
    mu, s0, smin = -0.2, 0.5, 0.002
    calls = []

    def step(inputs):
        calls.append(float(inputs["sigma"][0]))
        s = inputs["sigma"][:, None, None].astype(np.float64)
        return (mu + (inputs["x"] - mu) * math.sqrt(s0**2 + smin**2) / np.sqrt(s0**2 + s**2)).astype(np.float32)

    levels = consistency_levels(5)
    assert levels[0] == pytest.approx(80.0) and (levels[1:] < levels[:-1]).all()
    f = GuidedConsistency(step, None, None, 1.0, 1.0, (4, 1), 8)
    for steps in (1, 5):
        calls.clear()
        out = sample_latents(f, (20_000, 4, 1), SamplerSettings(steps=steps), np.random.default_rng(1))
        assert len(calls) == steps
        assert out.mean() == pytest.approx(mu, abs=0.01)
        assert out.std() == pytest.approx(s0, rel=0.02)


def test_objective_follows_the_trainer_step():
    objective = DiTConsistencyObjective(ConsistencyLoss(total_steps=100))
    objective.set_step(50)
    model = ConsistencyPrecond(DiT(PRESETS["tiny"]))
    batch = {"target": torch.randn(2, 64, 8), "context": torch.randn(2, 64, 8)}
    loss, scalars = objective(model, batch)
    assert scalars["index_step"] == pytest.approx(0.01) and torch.isfinite(loss)


def rel_err(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example relative RMS error ``||x - t|| / ||t||``, ``(B,)``."""
    return (x - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)


def test_tiny_dit_overfits_two_pairs_and_samples_them_in_5_steps(tmp_path):
    """EDM 400 steps then consistency training 150 steps (ECT, from the EDM weights);
    5-step consistency sampling must return each pair's target within a relative RMS error
    of 0.15 (a fresh network gives ~1.0; measured ~0.06) and be closer to its own target
    than to the other pair's."""
    torch.manual_seed(0)
    frames, batch = 16, 32
    context = torch.randn(2, 64, frames)
    target = 0.5 * torch.randn(2, 64, frames)
    clap = nn.functional.normalize(torch.randn(2, 512), dim=-1)

    class Pairs:
        def __iter__(self):
            g = torch.Generator().manual_seed(1)
            while True:
                i = torch.randint(2, (batch,), generator=g)
                yield {"target": target[i], "context": context[i], "clap": clap[i]}

    def error(model):
        out = torch.from_numpy(sample(model, frames, context=context.numpy(), clap=clap.numpy(),
                                      settings=SamplerSettings(w_context=1.0, w_clap=1.0), seed=3))
        return rel_err(out, target), rel_err(out, target.flip(0))

    no_drop = ConditionDropout(0.0, 0.0)
    edm = EDMPrecond(DiT(PRESETS["tiny"]))
    assert (error(ConsistencyPrecond.from_edm(edm))[0] > 0.9).all()
    settings = dict(warmup_steps=20, ema_decay=0.0, log_every=50, progress=False)
    Trainer(edm, DiTEDMObjective(EDMLoss(p_mean=0.0, p_std=2.0), no_drop), Pairs(),
            TrainConfig(out_dir=str(tmp_path / "edm"), total_steps=400, lr=3e-3,
                        **settings)).fit()
    # Consistency training starts from the EDM checkpoint (its EMA, = weights at decay 0).
    cm = load_weights(ConsistencyPrecond(DiT(PRESETS["tiny"])), tmp_path / "edm" / "last.pt")
    Trainer(cm, DiTConsistencyObjective(ConsistencyLoss(total_steps=150), no_drop), Pairs(),
            TrainConfig(out_dir=str(tmp_path / "cm"), total_steps=150, lr=2e-4,
                        **settings)).fit()
    own, other = error(cm)
    assert (own < 0.15).all(), own
    assert (other > 1.0).all(), other
    shutil.rmtree(tmp_path, ignore_errors=True)
