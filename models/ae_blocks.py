"""Transformer pieces of the autoencoder (shapes: ``B`` batch, ``L`` tokens, ``D`` width).

Spectrogram patches: a spectrogram chunk ``(B, C, F, T)`` is cut into patches of
``pf`` bins x ``pt`` frames; token ``i = time_patch * (F / pf) + freq_patch`` (time-major).
Per-chunk conditioning (noise level) drives AdaLN-Zero modulation of all tokens of the
chunk; the modulation and the output layer start at zero as in DiT.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["sincos_2d", "patchify", "unpatchify", "Attention", "Mlp", "Block",
           "AdaLNBlock", "NoiseEmbedder", "FinalLayer", "chunk_causal_mask", "modulate"]


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """``(n,)`` positions -> ``(n, dim)`` fixed sin/cos features (``dim`` even)."""
    freqs = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.double()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(n_time: int, n_freq: int, dim: int) -> Tensor:
    """``(n_time * n_freq, dim)`` position features, time-major token order; half of the
    channels encode the time patch, half the frequency patch (``dim`` divisible by 4)."""
    t = sincos_1d(torch.arange(n_time).repeat_interleave(n_freq), dim // 2)
    f = sincos_1d(torch.arange(n_freq).repeat(n_time), dim // 2)
    return torch.cat([t, f], dim=1)


def patchify(x: Tensor, pf: int, pt: int) -> Tensor:
    """``(B, C, F, T)`` -> ``(B, (T/pt)(F/pf), C pf pt)`` patches in time-major order."""
    b, c, f, t = x.shape
    x = x.reshape(b, c, f // pf, pf, t // pt, pt)
    return x.permute(0, 4, 2, 1, 3, 5).reshape(b, (t // pt) * (f // pf), c * pf * pt)


def unpatchify(x: Tensor, channels: int, bins: int, frames: int, pf: int, pt: int) -> Tensor:
    """Inverse of :func:`patchify`: ``(B, L, C pf pt)`` -> ``(B, C, bins, frames)``."""
    b = x.shape[0]
    x = x.reshape(b, frames // pt, bins // pf, channels, pf, pt)
    return x.permute(0, 3, 2, 4, 1, 5).reshape(b, channels, bins, frames)


def chunk_causal_mask(chunks: int, tokens_per_chunk: int, device=None) -> Tensor:
    """``(L, L)`` boolean mask, True where a query token may attend: a token of chunk
    ``a`` sees every token of chunks ``b <= a`` (``L = chunks * tokens_per_chunk``)."""
    idx = torch.arange(chunks, device=device).repeat_interleave(tokens_per_chunk)
    return idx[None, :] <= idx[:, None]


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class Attention(nn.Module):
    """Multi-head self-attention; ``mask (L, L)`` boolean, True = may attend."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm transformer block (encoder and decoder)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.mlp = Attention(dim, heads), Mlp(dim, mlp_ratio)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class AdaLNBlock(nn.Module):
    """DiT block with AdaLN-Zero driven by a per-chunk condition.

    ``x (B, W*Tk, D)`` tokens of ``W`` chunks, ``cond (B, W, D)`` one vector per chunk.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn, self.mlp = Attention(dim, heads), Mlp(dim, mlp_ratio)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        w = cond.shape[1]
        per_chunk = lambda t: t.reshape(b, w, n // w, d)  # noqa: E731  (broadcast, no copy)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond)[:, :, None].chunk(6, -1)
        h = modulate(per_chunk(self.norm1(x)), shift1, scale1).reshape(b, n, d)
        x = x + (gate1 * per_chunk(self.attn(h, mask))).reshape(b, n, d)
        h = modulate(per_chunk(self.norm2(x)), shift2, scale2).reshape(b, n, d)
        return x + (gate2 * per_chunk(self.mlp(h))).reshape(b, n, d)


class NoiseEmbedder(nn.Module):
    """``c_noise (...,)`` -> ``(..., D)``: sinusoidal features then a 2-layer MLP."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: Tensor) -> Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=c_noise.device) / half)
        angles = 1000.0 * c_noise.float()[..., None] * freqs   # ln(sigma)/4 spans ~[-1.6, 1.1]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=-1))


class FinalLayer(nn.Module):
    """AdaLN-modulated norm then a zero-initialised linear map to patch values."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        b, n, d = x.shape
        shift, scale = self.modulation(cond)[:, :, None].chunk(2, -1)
        h = modulate(self.norm(x).reshape(b, cond.shape[1], -1, d), shift, scale)
        return self.linear(h.reshape(b, n, d))
