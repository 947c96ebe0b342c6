"""Sampling controls of the one sampler (numerics.sampler) driving a torch DiT
(models.sampling): guidance, seeds, variations, inpainting, loops, slerp."""
import numpy as np
import pytest
import torch

from sideman.models.consistency import ConsistencyPrecond
from sideman.models.dit import PRESETS, DiT
from sideman.models.edm import EDMPrecond
from sideman.models.sampling import GuidedStep, sample, step_function
from sideman.numerics.guidance import guidance_passes
from sideman.numerics.sampler import GuidedConsistency, SamplerSettings, sample_latents, slerp

torch.set_num_threads(1)
T = 12


def dit(seed: int = 0) -> DiT:
    torch.manual_seed(seed)
    net = DiT(PRESETS["tiny"])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def conditions(b: int = 2):
    g = torch.Generator().manual_seed(7)
    return (torch.randn(b, 64, T, generator=g),
            torch.nn.functional.normalize(torch.randn(b, 512, generator=g), dim=-1))


class Counting(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.batches = model, []
        self.net = model.net

    def forward(self, x, sigma, **cond):
        self.batches.append(x.shape[0])
        return self.model(x, sigma, **cond)


def guided(model, ctx, clap, w_ctx, w_clap):
    return GuidedConsistency(step_function(model), None if ctx is None else ctx.numpy(),
                             None if clap is None else clap.numpy(), w_ctx, w_clap, (64, T), 512)


@pytest.mark.parametrize("wrapper", [EDMPrecond, ConsistencyPrecond])
def test_guidance_weight_one_is_the_conditional_output(wrapper):
    model = wrapper(dit())
    ctx, clap = conditions()
    x, sigma = torch.randn(2, 64, T), 1.3
    for c, a in ((ctx, clap), (ctx, None), (None, clap), (None, None)):   # Table 1 settings
        with torch.no_grad():
            expect = model(x, torch.full((2,), sigma), context=c, clap=a).numpy()
        assert np.allclose(guided(model, c, a, 1.0, 1.0)(x.numpy(), sigma), expect, atol=1e-5)


def test_guidance_matches_separate_passes_in_one_batched_call():
    model = Counting(EDMPrecond(dit()))
    ctx, clap = conditions()
    x, sigma = torch.randn(2, 64, T), torch.full((2,), 0.7)
    drop = torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        d_none = model(x, sigma, context=ctx, clap=clap, context_mask=drop, clap_mask=drop).numpy()
        d_ctx = model(x, sigma, context=ctx, clap=clap, clap_mask=drop).numpy()
        d_full = model(x, sigma, context=ctx, clap=clap).numpy()
        d_clap = model(x, sigma, context=ctx, clap=clap, context_mask=drop).numpy()
    model.batches.clear()
    out = guided(model, ctx, clap, 1.5, 2.0)(x.numpy(), 0.7)
    expect = d_none + 1.5 * (d_ctx - d_none) + 2.0 * (d_full - d_ctx)
    assert np.allclose(out, expect, atol=1e-5)
    assert model.batches == [6]                         # three passes, one call
    assert not np.allclose(out, d_full, atol=1e-3)
    model.batches.clear()
    out = guided(model, ctx, clap, 1.25, 1.25)(x.numpy(), 0.7)  # defaults: the pair (0,0), (ctx,clap)
    assert np.allclose(out, d_none + 1.25 * (d_full - d_none), atol=1e-5)
    assert model.batches == [4]
    out = guided(model, None, clap, 1.5, 2.0)(x.numpy(), 0.7)   # CLAP only
    assert np.allclose(out, d_none + 2.0 * (d_clap - d_none), atol=1e-5)
    out = guided(model, ctx, None, 1.5, 2.0)(x.numpy(), 0.7)    # context only
    assert np.allclose(out, d_none + 1.5 * (d_ctx - d_none), atol=1e-5)
    assert len(guidance_passes(1.5, 2.0, True, False)) == 2


def test_seed_reproduces_a_take():
    model = ConsistencyPrecond(dit())
    ctx, clap = (c.numpy() for c in conditions())
    run = lambda seed: sample(model, T, context=ctx, clap=clap, settings=SamplerSettings(steps=4), seed=seed)  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05
    assert a.shape == (2, 64, T) and np.isfinite(a).all()


def test_inpainting_keeps_the_kept_frames_exactly():
    model = ConsistencyPrecond(dit())
    ctx, clap = (c.numpy() for c in conditions())
    take = (0.5 * np.random.default_rng(0).standard_normal((2, 64, T))).astype(np.float32)
    keep = np.zeros(T, dtype=bool)
    keep[:4] = keep[9:] = True
    for loop in (False, True):
        out = sample(model, T, context=ctx, clap=clap, take=take, keep=keep,
                     settings=SamplerSettings(steps=4, loop=loop))
        assert np.array_equal(out[..., keep], take[..., keep])
        assert np.abs(out[..., ~keep] - take[..., ~keep]).mean() > 0.05


def test_variation_strength():
    model = ConsistencyPrecond(dit())
    ctx, clap = (c.numpy() for c in conditions())
    take = (0.5 * np.random.default_rng(4).standard_normal((2, 64, T))).astype(np.float32)
    dist = {}
    for strength in (0.0, 0.1, 0.6, 1.0):
        out = sample(model, T, context=ctx, clap=clap, take=take, settings=SamplerSettings(strength=strength))
        dist[strength] = float(np.linalg.norm(out - take) / np.linalg.norm(take))
    assert dist[0.0] == 0.0
    assert dist[0.1] < 0.1 < dist[0.6]
    assert dist[0.6] < dist[1.0]


def gaussian_process_step(frames: int = 32, length: float = 4.0, sd: float = 0.5):
    """The exact consistency function of smooth data along time (not periodic), as a step function."""
    i = np.arange(frames, dtype=np.float64)
    cov = sd**2 * np.exp(-(i[:, None] - i[None]) ** 2 / (2 * length**2))
    lam, u = np.linalg.eigh(cov + 1e-6 * np.eye(frames))
    lam = np.clip(lam, 0, None)

    def step(inputs):
        s = float(inputs["sigma"][0])
        gains = np.sqrt((lam + 0.002**2) / (lam + s**2))
        return (inputs["x"].astype(np.float64) @ ((u * gains) @ u.T).T).astype(np.float32)
    return step


def seam_ratio(x: np.ndarray) -> float:
    """Mean square jump across the loop seam over the mean square jump between neighbours."""
    seam = np.mean((x[..., -1] - x[..., 0]) ** 2)
    return float(seam / np.mean((x[..., 1:] - x[..., :-1]) ** 2))


def test_loop_sampling_is_continuous_across_the_seam():
    f = GuidedConsistency(gaussian_process_step(), None, None, 1.0, 1.0, (4, 32), 8)
    plain = sample_latents(f, (256, 4, 32), SamplerSettings(), np.random.default_rng(2))
    looped = sample_latents(f, (256, 4, 32), SamplerSettings(loop=True), np.random.default_rng(2))
    assert seam_ratio(plain) > 10.0          # the data itself does not loop
    assert seam_ratio(looped) < 1.5


def test_loop_rolls_the_context_with_the_state():
    model = EDMPrecond(dit())
    ctx, clap = conditions()
    x, shift = torch.randn(2, 64, T), 5
    f = guided(model, ctx, clap, 1.0, 1.0)
    with torch.no_grad():
        expect = model(x, torch.full((2,), 0.9), context=ctx.roll(shift, -1), clap=clap).numpy()
    assert np.allclose(f(x.numpy(), 0.9, shift), expect, atol=1e-5)
    assert not np.allclose(f(x.numpy(), 0.9, 0), expect, atol=1e-3)


def test_any_length_and_unconditional_batch():
    model = ConsistencyPrecond(dit())
    for frames in (1, 7, 50):
        out = sample(model, frames, batch=3)
        assert out.shape == (3, 64, frames) and np.isfinite(out).all()


def test_guided_step_is_the_exported_graph():
    from sideman.export import dit_step

    assert dit_step.GuidedStep is GuidedStep


def test_slerp():
    rng = np.random.default_rng(0)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    a, b = unit(rng.standard_normal((4, 512))), unit(rng.standard_normal((4, 512)))
    assert np.allclose(slerp(a, b, 0.0), a, atol=1e-6)
    assert np.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert np.allclose(np.linalg.norm(mid, axis=-1), 1.0, atol=1e-5)
    angle = lambda u, v: np.arccos(np.clip((u * v).sum(-1), -1, 1))  # noqa: E731
    assert np.allclose(angle(a, mid), angle(a, b) / 2, atol=1e-4)
    assert np.allclose(slerp(a, a, 0.3), a, atol=1e-6)     # parallel fallback
    assert np.allclose(np.linalg.norm(slerp(2 * a, b, 0.5), axis=-1), 1.5, atol=1e-5)
