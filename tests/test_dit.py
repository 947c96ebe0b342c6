"""DiT: size of the presets, AdaLN-Zero initialisation, conditioning masks, any length."""
import pytest
import torch

from sideman.models.dit import PRESETS, ConditionDropout, DiT, DiTConfig

torch.set_num_threads(1)


def perturbed(cfg: DiTConfig, seed: int = 0, scale: float = 0.05) -> DiT:
    """A DiT whose zero-initialised parts are made non-zero, so outputs are informative."""
    torch.manual_seed(seed)
    model = DiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def inputs(b: int = 2, t: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 64, t, generator=g), torch.randn(b, generator=g),
            torch.randn(b, 64, t, generator=g), torch.randn(b, 512, generator=g))


def test_paper_preset_parameter_count():
    with torch.device("meta"):
        model = DiT(PRESETS["paper"])
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 280e6) / 280e6 <= 0.03, n
    cfg = PRESETS["paper"]
    assert (cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio) == (1024, 18, 4, 4.0)
    assert cfg.noise_embed_dim == 512 and cfg.qkv_conv_kernel == 3


def test_small_and_tiny_sizes():
    count = lambda c: sum(p.numel() for p in DiT(c).parameters())  # noqa: E731
    assert count(PRESETS["tiny"]) < 200_000
    assert 1e6 < count(PRESETS["small"]) < 10e6


def test_adaln_zero_initial_output_is_exactly_zero():
    cfg = DiTConfig(width=64, depth=3, heads=2, cond_dim=32, noise_embed_dim=32)
    model = DiT(cfg)
    x, c_noise, ctx, clap = inputs()
    assert torch.equal(model(x, c_noise, ctx, clap), torch.zeros_like(x))
    h, c = torch.randn(2, 12, 64), torch.randn(2, 32)
    for block in model.blocks:          # every block starts as the identity
        assert torch.equal(block(h, c), h)


def test_output_shape_for_any_length_and_patch_size():
    for patch in (1, 2, 3):
        cfg = DiTConfig(width=48, depth=1, heads=2, cond_dim=16, noise_embed_dim=16,
                        patch_size=patch)
        model = perturbed(cfg)
        for t in (1, 7, 33):
            x, c_noise, ctx, clap = inputs(t=t)
            out = model(x, c_noise, ctx, clap)
            assert out.shape == x.shape and torch.isfinite(out).all()
            assert out.abs().max() > 0


def test_patchify_roundtrip():
    model = DiT(DiTConfig(width=48, depth=1, heads=2, cond_dim=16, noise_embed_dim=16,
                          patch_size=4))
    x = torch.randn(2, 64, 10)
    assert torch.equal(model.unpatchify(model.patchify(x), 10), x)


def test_masks_replace_conditions_with_nulls():
    model = perturbed(PRESETS["tiny"])
    x, c_noise, ctx, clap = inputs()
    full = model(x, c_noise, ctx, clap)
    no_ctx = model(x, c_noise, None, clap)
    no_clap = model(x, c_noise, ctx, None)
    all_ctx = torch.ones(2, dtype=torch.bool)
    assert torch.allclose(model(x, c_noise, ctx, clap, context_mask=all_ctx), no_ctx, atol=1e-6)
    assert torch.allclose(model(x, c_noise, ctx, clap, clap_mask=all_ctx), no_clap, atol=1e-6)
    row0 = torch.tensor([True, False])  # per-row: only row 0 is dropped
    mixed = model(x, c_noise, ctx, clap, context_mask=row0)
    assert torch.allclose(mixed[0], no_ctx[0], atol=1e-6)
    assert torch.allclose(mixed[1], full[1], atol=1e-6)
    assert not torch.allclose(full, no_ctx, atol=1e-4)
    assert not torch.allclose(full, no_clap, atol=1e-4)


def test_output_depends_on_noise_level_and_position():
    model = perturbed(PRESETS["tiny"])
    x, c_noise, ctx, clap = inputs(b=1, t=16)
    out = model(x, c_noise, ctx, clap)
    assert not torch.allclose(out, model(x, c_noise + 1.0, ctx, clap), atol=1e-4)
    # A frame permutation of the inputs is not just a permutation of the output:
    # the network sees positions (rotary embedding and the Q/K/V convolutions).
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    permuted = model(x[..., perm], c_noise, ctx[..., perm], clap)
    assert not torch.allclose(permuted, out[..., perm], atol=1e-4)


def test_qkv_convolution_is_depthwise_with_symmetric_padding():
    cfg = PRESETS["paper"]
    with torch.device("meta"):
        conv = DiT(DiTConfig(width=cfg.width, depth=1, heads=cfg.heads)).blocks[0].attn.qkv_conv
    assert conv.groups == conv.in_channels == conv.out_channels == 3 * cfg.width
    assert conv.kernel_size == (3,) and conv.padding == (1,)


def test_condition_dropout_rates_are_independent():
    g = torch.Generator().manual_seed(0)
    ctx, clap = ConditionDropout(0.3, 0.6).sample(40_000, generator=g)
    assert ctx.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert clap.float().mean().item() == pytest.approx(0.6, abs=0.01)
    assert (ctx & clap).float().mean().item() == pytest.approx(0.18, abs=0.01)


def test_a_token_wider_than_the_model_is_flagged():
    """The final linear map reaches only `width` of a token's patch x channels output values:
    with more, noise outside that subspace cannot be cancelled (docs/dit.md). `medium` on the
    band codec's 287 channels is such a model; `fine` is not."""
    from dataclasses import replace

    assert replace(PRESETS["medium"], latent_channels=287).rank_limited
    assert not replace(PRESETS["fine"], latent_channels=287).rank_limited
    assert not PRESETS["paper"].rank_limited
    with pytest.warns(UserWarning, match="cancel noise in only 384 of the 574 directions"):
        DiT(replace(PRESETS["medium"], latent_channels=287, depth=1))
    net = DiT(replace(PRESETS["fine"], latent_channels=287, depth=1))
    assert net.final.linear.weight.shape == (287, 384)
