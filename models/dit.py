"""Diffusion Transformer over autoencoder latents (the generator backbone of Sideman).

The network is the raw function F of the EDM / consistency parameterisations: it maps the
scaled noisy target latents, the noise label ``c_noise`` and the conditions to an
unscaled output. Preconditioning lives in :mod:`sideman.models.edm` and
:mod:`sideman.models.consistency`.

Shapes: latents are ``(B, C, T)`` with ``C = latent_channels`` (64) and ``T`` frames
(11.72 frames/s, 117 frames for 10 s); any ``T >= 1`` works. The CLAP embedding is
``(B, clap_dim)`` (512, L2-normalised). Conditions are dropped per example with boolean
masks of shape ``(B,)`` where ``True`` means *dropped*: a dropped context is replaced by
a learned null latent frame, a dropped CLAP embedding by a learned null embedding.

Architecture (DiT with AdaLN-Zero, as facebookresearch/DiT, adapted to 1-D sequences):
noisy target and context are concatenated on channels, cut into patches along time,
embedded, processed by blocks of self-attention (rotary positions, Primer depth-wise
convolutions after the Q, K, V projections) and an MLP, each modulated by shift/scale/gate
from the conditioning vector ``c = noise_mlp(sinusoid(c_noise)) + clap_mlp(clap)``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DiTConfig", "PRESETS", "DiT", "ConditionDropout", "sinusoidal_embedding"]


@dataclass(frozen=True)
class DiTConfig:
    """Hyper-parameters of :class:`DiT`.

    ``cond_dim`` is the width of the conditioning vector that drives every AdaLN
    modulation; 512 reproduces the paper's ~280M parameters with width 1024.
    ``noise_embed_scale`` multiplies ``c_noise`` before the sinusoidal embedding (1.0 as
    in EDM's positional embedding of ``ln(sigma)/4``; small values keep the network smooth
    in sigma, which consistency training needs).
    """

    latent_channels: int = 64
    width: int = 1024
    depth: int = 18
    heads: int = 4
    mlp_ratio: float = 4.0
    patch_size: int = 1
    noise_embed_dim: int = 512
    clap_dim: int = 512
    cond_dim: int = 512
    qkv_conv_kernel: int = 3
    noise_embed_scale: float = 1.0
    rope_base: float = 10000.0

    @property
    def rank_limited(self) -> bool:
        """Whether a token's output (patch_size x latent_channels values) exceeds the width:
        then the final linear map reaches only a ``width``-dimensional subspace of it, and the
        noise outside that subspace passes the denoiser through its skip connection uncancelled
        (measured in docs/dit.md: samples keep it as roughness across channels)."""
        return self.patch_size * self.latent_channels > self.width

    def __post_init__(self) -> None:
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError("width / heads must be an even integer (rotary embedding)")
        if self.qkv_conv_kernel % 2 == 0:
            raise ValueError("qkv_conv_kernel must be odd for symmetric padding")
        if self.noise_embed_dim % 2:
            raise ValueError("noise_embed_dim must be even")


PRESETS: dict[str, DiTConfig] = {
    # The paper: width 1024, 18 layers, 4 heads, MLP x4, 512-d noise embedding (~286M).
    "paper": DiTConfig(),
    # Trainable on a CPU in hours (~5M parameters).
    "small": DiTConfig(width=256, depth=4, heads=4, cond_dim=256, noise_embed_dim=256),
    # Between the two, for the band codec's 287-channel latents at hop 2048: two frames
    # per token (117 tokens for 10 s). Chosen by held-out loss per CPU-hour (docs/dit.md).
    "medium": DiTConfig(width=384, depth=6, heads=6, cond_dim=384, noise_embed_dim=256,
                        patch_size=2),
    "base": DiTConfig(width=512, depth=8, heads=8, cond_dim=512, noise_embed_dim=256,
                      patch_size=2),
    # `medium` with one frame per token: its width holds a whole token of the band codec's 287
    # channels, so the denoiser can cancel noise in every direction (`medium` cannot: 574
    # values per token through 384; docs/dit.md). 235 tokens for 10 s, twice `medium`'s.
    "fine": DiTConfig(width=384, depth=6, heads=6, cond_dim=384, noise_embed_dim=256),
    # Unit tests (<200k parameters).
    "tiny": DiTConfig(width=128, depth=1, heads=2, mlp_ratio=1.0, cond_dim=32, noise_embed_dim=64),
}


def sinusoidal_embedding(c_noise: Tensor, dim: int, scale: float = 1.0,
                         max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of a scalar per example.

    Args:
        c_noise: ``(B,)`` noise labels (EDM: ``ln(sigma)/4``, dimensionless).
        dim: even output width.
        scale: multiplies ``c_noise`` before the embedding.
        max_period: the slowest frequency is ``1/max_period`` radians per unit.
    Returns:
        ``(B, dim)``: ``[cos(c*f_k), sin(c*f_k)]`` with ``f_k`` log-spaced in
        ``[1/max_period, 1]``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=c_noise.device,
                                                           dtype=torch.float32) / half)
    args = (c_noise.float() * scale)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """AdaLN affine: ``x (B, N, D) * (1 + scale (B, D)) + shift (B, D)``."""
    return x * (1 + scale[:, None]) + shift[:, None]


class NoiseEmbedder(nn.Module):
    """``c_noise (B,)`` -> sinusoidal ``noise_embed_dim`` features -> MLP -> ``(B, cond_dim)``."""

    def __init__(self, embed_dim: int, cond_dim: int, scale: float) -> None:
        super().__init__()
        self.embed_dim, self.scale = embed_dim, scale
        self.mlp = nn.Sequential(nn.Linear(embed_dim, cond_dim), nn.SiLU(),
                                 nn.Linear(cond_dim, cond_dim))

    def forward(self, c_noise: Tensor) -> Tensor:
        emb = sinusoidal_embedding(c_noise, self.embed_dim, self.scale)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class ClapEmbedder(nn.Module):
    """CLAP embedding ``(B, clap_dim)`` -> ``(B, cond_dim)``; dropped rows use a learned null."""

    def __init__(self, clap_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.null = nn.Parameter(torch.zeros(clap_dim))
        self.mlp = nn.Sequential(nn.Linear(clap_dim, cond_dim), nn.SiLU(),
                                 nn.Linear(cond_dim, cond_dim))

    def forward(self, clap: Tensor | None, drop: Tensor | None, batch: int) -> Tensor:
        if clap is None:
            clap = self.null.expand(batch, -1)
        elif drop is not None:
            clap = torch.where(drop[:, None], self.null.to(clap.dtype), clap)
        return self.mlp(clap)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) for any sequence length; no learned table."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Rotate ``x (B, H, N, Dh)`` by the angle ``position * inv_freq``."""
        pos = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        angles = pos[:, None] * self.inv_freq[None]               # (N, Dh/2)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
        return out.flatten(-2)


class ConvAttention(nn.Module):
    """Multi-head self-attention with depth-wise convolutions after Q, K, V (Primer).

    The Q, K and V projections are one ``Linear(D, 3D)``; the depth-wise convolution is one
    grouped ``Conv1d(3D, 3D, k, groups=3D)`` with symmetric zero padding, i.e. one
    length-``k`` filter per channel of each of Q, K and V along the sequence.
    """

    def __init__(self, width: int, heads: int, kernel: int, rope_base: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.qkv_conv = nn.Conv1d(3 * width, 3 * width, kernel, padding=kernel // 2,
                                  groups=3 * width)
        self.proj = nn.Linear(width, width)
        self.rope = RotaryEmbedding(width // heads, rope_base)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, N, D)`` -> ``(B, N, D)``."""
        b, n, d = x.shape
        qkv = self.qkv_conv(self.qkv(x).transpose(1, 2)).transpose(1, 2)
        q, k, v = qkv.reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = self.rope(q), self.rope(k)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Position-wise feed-forward ``D -> hidden -> D`` with tanh-GELU."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """Transformer block with AdaLN-Zero: ``x + gate * sublayer(modulate(LN(x)))`` twice."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = ConvAttention(d, cfg.heads, cfg.qkv_conv_kernel, cfg.rope_base)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.cond_dim, 6 * d))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """``x (B, N, D)``, ``c (B, cond_dim)`` -> ``(B, N, D)``."""
        sh1, sc1, g1, sh2, sc2, g2 = self.modulation(c).chunk(6, dim=-1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class FinalLayer(nn.Module):
    """AdaLN (shift, scale) then a linear map from width to ``patch * channels``."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(cfg.width, cfg.patch_size * cfg.latent_channels)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.cond_dim, 2 * cfg.width))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """Latent Diffusion Transformer for accompaniment generation.

    ``forward(x, c_noise, context, clap, context_mask, clap_mask) -> (B, C, T)``.
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, p = cfg.latent_channels, cfg.patch_size
        if cfg.rank_limited:
            warnings.warn(f"DiT width {cfg.width} < patch_size x latent_channels = {p * c}: the denoiser can "
                          f"cancel noise in only {cfg.width} of the {p * c} directions of a token (samples "
                          "stay noisy); use patch_size 1 or a width of at least that", stacklevel=2)
        self.null_context = nn.Parameter(torch.zeros(c))
        self.patch_embed = nn.Linear(2 * c * p, cfg.width)
        self.noise_embed = NoiseEmbedder(cfg.noise_embed_dim, cfg.cond_dim, cfg.noise_embed_scale)
        self.clap_embed = ClapEmbedder(cfg.clap_dim, cfg.cond_dim)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """DiT initialisation: Xavier-uniform linears with zero bias, N(0, 0.02) embedding
        MLPs, identity depth-wise convolutions, zero AdaLN modulations and zero final
        linear (so every block starts as the identity and the output starts at 0), zero
        null embeddings."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for mlp in (self.noise_embed.mlp, self.clap_embed.mlp):
            nn.init.normal_(mlp[0].weight, std=0.02)
            nn.init.normal_(mlp[2].weight, std=0.02)
        for block in self.blocks:
            conv = block.attn.qkv_conv
            nn.init.zeros_(conv.weight)
            conv.weight[:, 0, conv.kernel_size[0] // 2] = 1.0
            nn.init.zeros_(conv.bias)
            nn.init.zeros_(block.modulation[-1].weight)
            nn.init.zeros_(block.modulation[-1].bias)
        for lin in (self.final.modulation[-1], self.final.linear):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.null_context)
        nn.init.zeros_(self.clap_embed.null)

    def patchify(self, x: Tensor) -> Tensor:
        """``(B, C', T)`` -> ``(B, ceil(T/p), p*C')``; pads the end with zeros to ``p | T``."""
        p = self.cfg.patch_size
        x = F.pad(x, (0, (-x.shape[-1]) % p))
        b, ch, t = x.shape
        return x.reshape(b, ch, t // p, p).permute(0, 2, 3, 1).reshape(b, t // p, p * ch)

    def unpatchify(self, x: Tensor, frames: int) -> Tensor:
        """``(B, N, p*C)`` -> ``(B, C, frames)`` (drops the padding)."""
        b, n, _ = x.shape
        c, p = self.cfg.latent_channels, self.cfg.patch_size
        x = x.reshape(b, n, p, c).permute(0, 3, 1, 2).reshape(b, c, n * p)
        return x[..., :frames]

    def forward(self, x: Tensor, c_noise: Tensor, context: Tensor | None = None,
                clap: Tensor | None = None, context_mask: Tensor | None = None,
                clap_mask: Tensor | None = None) -> Tensor:
        """Raw network output.

        Args:
            x: ``(B, C, T)`` noisy target latents, already scaled by ``c_in``.
            c_noise: ``(B,)`` or scalar noise label (EDM: ``ln(sigma)/4``).
            context: ``(B, C, T)`` context latents, or ``None`` (= dropped for all rows).
            clap: ``(B, clap_dim)`` CLAP embedding, or ``None`` (= dropped for all rows).
            context_mask: ``(B,)`` bool, ``True`` drops the row's context.
            clap_mask: ``(B,)`` bool, ``True`` drops the row's CLAP embedding.
        Returns:
            ``(B, C, T)``.
        """
        b, _, t = x.shape
        null_ctx = self.null_context.to(x.dtype)[None, :, None]
        if context is None:
            context = null_ctx.expand(b, -1, t)
        elif context_mask is not None:
            context = torch.where(context_mask[:, None, None], null_ctx, context)
        c_noise = torch.as_tensor(c_noise, device=x.device).reshape(-1).expand(b)
        c = self.noise_embed(c_noise) + self.clap_embed(clap, clap_mask, b)
        h = self.patch_embed(self.patchify(torch.cat([x, context], dim=1)))
        for block in self.blocks:
            h = block(h, c)
        return self.unpatchify(self.final(h, c), t)


@dataclass
class ConditionDropout:
    """Independent per-example dropping of the context and CLAP conditions for CFG.

    ``sample(batch)`` returns ``(context_mask, clap_mask)``, each ``(B,)`` bool with
    ``True`` meaning dropped, drawn with probabilities ``p_context`` and ``p_clap``.
    """

    p_context: float = 0.2
    p_clap: float = 0.2

    def sample(self, batch: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        u = torch.rand(2, batch, device=device, generator=generator)
        return u[0] < self.p_context, u[1] < self.p_clap
