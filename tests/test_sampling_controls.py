"""Sampling controls: guidance, seeds, variations, inpainting, loops, slerp."""
import pytest
import torch

from sideman.models.consistency import ConsistencyPrecond, consistency_sample, consistency_sigmas
from sideman.models.dit import PRESETS, DiT
from sideman.models.edm import EDMPrecond, heun_sample, karras_sigmas
from sideman.models.sampling_controls import (CFGModel, GuidedDenoiser, LoopDenoiser, sample,
                                              slerp, tile_loop)

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

    def forward(self, x, sigma, **cond):
        self.batches.append(x.shape[0])
        return self.model(x, sigma, **cond)


@pytest.mark.parametrize("wrapper", [EDMPrecond, ConsistencyPrecond])
def test_guidance_weight_one_is_the_conditional_output(wrapper):
    model = wrapper(dit())
    ctx, clap = conditions()
    x, sigma = torch.randn(2, 64, T), torch.full((2,), 1.3)
    guided = CFGModel(model, 1.0, 1.0)
    for c, a in ((ctx, clap), (ctx, None), (None, clap), (None, None)):   # Table 1 settings
        assert torch.equal(guided(x, sigma, c, a), model(x, sigma, context=c, clap=a))


def test_guidance_matches_separate_passes_in_one_batched_call():
    model = Counting(EDMPrecond(dit()))
    ctx, clap = conditions()
    x, sigma = torch.randn(2, 64, T), torch.full((2,), 0.7)
    drop = torch.ones(2, dtype=torch.bool)
    d_none = model(x, sigma, context=ctx, clap=clap, context_mask=drop, clap_mask=drop)
    d_ctx = model(x, sigma, context=ctx, clap=clap, clap_mask=drop)
    d_full = model(x, sigma, context=ctx, clap=clap)
    d_clap = model(x, sigma, context=ctx, clap=clap, context_mask=drop)
    model.batches.clear()
    w_ctx, w_clap = 1.5, 2.0
    out = CFGModel(model, w_ctx, w_clap)(x, sigma, ctx, clap)
    expect = d_none + w_ctx * (d_ctx - d_none) + w_clap * (d_full - d_ctx)
    assert torch.allclose(out, expect, atol=1e-5)
    assert model.batches == [6]                         # three passes, one call
    assert not torch.allclose(out, d_full, atol=1e-3)
    model.batches.clear()
    out = CFGModel(model, 1.25, 1.25)(x, sigma, ctx, clap)  # defaults: the pair (0,0), (ctx,clap)
    assert torch.allclose(out, d_none + 1.25 * (d_full - d_none), atol=1e-5)
    assert model.batches == [4]
    out = CFGModel(model, 1.5, 2.0)(x, sigma, None, clap)   # CLAP only
    assert torch.allclose(out, d_none + 2.0 * (d_clap - d_none), atol=1e-5)
    out = CFGModel(model, 1.5, 2.0)(x, sigma, ctx, None)    # context only
    assert torch.allclose(out, d_none + 1.5 * (d_ctx - d_none), atol=1e-5)


@pytest.mark.parametrize("wrapper", [EDMPrecond, ConsistencyPrecond])
def test_seed_reproduces_a_take(wrapper):
    model = wrapper(dit())
    ctx, clap = conditions()
    run = lambda seed: sample(model, T, context=ctx, clap=clap, steps=4,  # noqa: E731
                              generator=torch.Generator().manual_seed(seed))
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.05
    assert a.shape == (2, 64, T) and torch.isfinite(a).all()


@pytest.mark.parametrize("wrapper", [EDMPrecond, ConsistencyPrecond])
def test_inpainting_keeps_the_kept_frames_exactly(wrapper):
    model = wrapper(dit())
    ctx, clap = conditions()
    take = 0.5 * torch.randn(2, 64, T)
    keep = torch.zeros(T, dtype=torch.bool)
    keep[:4] = keep[9:] = True
    for loop in (False, True):
        out = sample(model, T, context=ctx, clap=clap, take=take, keep=keep, loop=loop,
                     steps=4, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out[..., keep], take[..., keep])
        assert (out[..., ~keep] - take[..., ~keep]).abs().mean() > 0.05


@pytest.mark.parametrize("wrapper", [EDMPrecond, ConsistencyPrecond])
def test_variation_strength(wrapper):
    model = wrapper(dit())
    ctx, clap = conditions()
    take = 0.5 * torch.randn(2, 64, T, generator=torch.Generator().manual_seed(4))
    dist = {}
    for strength in (0.0, 0.1, 0.6, 1.0):
        out = sample(model, T, context=ctx, clap=clap, take=take, strength=strength,
                     generator=torch.Generator().manual_seed(0))
        dist[strength] = ((out - take).norm() / take.norm()).item()
    assert dist[0.0] == 0.0
    assert dist[0.1] < 0.1 < dist[0.6]
    assert dist[0.6] < dist[1.0]


def gaussian_process(frames: int = 32, length: float = 4.0, sd: float = 0.5):
    """Denoiser and consistency function of smooth data along time (not periodic)."""
    i = torch.arange(frames, dtype=torch.float64)
    cov = sd**2 * torch.exp(-(i[:, None] - i[None]) ** 2 / (2 * length**2))
    lam, u = torch.linalg.eigh(cov + 1e-6 * torch.eye(frames, dtype=torch.float64))
    lam = lam.clamp_min(0)

    def apply(x, gains):
        return (x.double() @ ((u * gains) @ u.T).T).float()

    denoise = lambda x, s: apply(x, lam / (lam + float(s[0]) ** 2))  # noqa: E731
    consist = lambda x, s: apply(  # noqa: E731
        x, ((lam + 0.002**2) / (lam + float(s[0]) ** 2)).sqrt())
    return denoise, consist


def seam_ratio(x: torch.Tensor) -> float:
    """Mean square jump across the loop seam over the mean square jump between neighbours."""
    seam = (x[..., -1] - x[..., 0]).pow(2).mean()
    return (seam / (x[..., 1:] - x[..., :-1]).pow(2).mean()).item()


def test_loop_sampling_is_continuous_across_the_seam():
    denoise, consist = gaussian_process()
    z = 80.0 * torch.randn(256, 4, 32, generator=torch.Generator().manual_seed(0))
    plain = heun_sample(denoise, z, karras_sigmas(30))
    looped = heun_sample(LoopDenoiser(denoise, torch.Generator().manual_seed(1)), z,
                         karras_sigmas(30))
    assert seam_ratio(plain) > 10.0          # the data itself does not loop
    assert seam_ratio(looped) < 1.5
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    plain = consistency_sample(consist, z, consistency_sigmas(5), generator=g())
    looped = consistency_sample(LoopDenoiser(consist, torch.Generator().manual_seed(1)), z,
                                consistency_sigmas(5), generator=g())
    assert seam_ratio(plain) > 10.0 and seam_ratio(looped) < 1.5


def test_loop_rolls_the_context_with_the_state():
    model = EDMPrecond(dit())
    ctx, clap = conditions()
    base = GuidedDenoiser(CFGModel(model, 1.0, 1.0), ctx, clap)
    x, sigma = torch.randn(2, 64, T), torch.full((2,), 0.9)
    # Rolling everything is the identity up to the network's own position dependence, so
    # compare with an explicit roll of state and context.
    gen = torch.Generator().manual_seed(5)
    shift = int(torch.randint(T, (), generator=torch.Generator().manual_seed(5)))
    out = LoopDenoiser(base, gen)(x, sigma)
    expect = model(x.roll(shift, -1), sigma, context=ctx.roll(shift, -1), clap=clap)
    expect = expect.roll(-shift, -1)
    assert shift != 0 and torch.allclose(out, expect, atol=1e-6)
    looped = sample(model, T, context=ctx, clap=clap, loop=True, steps=3,
                    generator=torch.Generator().manual_seed(0))
    assert looped.shape == (2, 64, T)
    assert torch.equal(tile_loop(looped, 30)[..., T:2 * T], looped)


def test_any_length_and_unconditional_batch():
    model = ConsistencyPrecond(dit())
    for frames in (1, 7, 50):
        out = sample(model, frames, batch=3, generator=torch.Generator().manual_seed(0))
        assert out.shape == (3, 64, frames) and torch.isfinite(out).all()


def test_slerp():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(4, 512, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4, 512, generator=g), dim=-1)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid.norm(dim=-1), torch.ones(4), atol=1e-5)
    angle = lambda u, v: torch.arccos((u * v).sum(-1).clamp(-1, 1))  # noqa: E731
    assert torch.allclose(angle(a, mid), angle(a, b) / 2, atol=1e-4)
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-6)     # parallel fallback
    assert slerp(2 * a, b, 0.5).norm(dim=-1).allclose(torch.full((4,), 1.5), atol=1e-5)
