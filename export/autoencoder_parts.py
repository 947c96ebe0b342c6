"""The autoencoder as three exported networks; the engine does STFT, chunking and the
two-step decoding loop in numpy (numerics.autoencoder) around them.

    encoder.onnx   spec (B, 4, bins, frames) -> latents (B, 64, frames / 8)   [whole chunks]
    decoder.onnx   latents (B, 64, T) -> features (B, T / chunk_latents, tokens, width)
    denoiser.onnx  x (B, 4, bins, W * chunk_frames), sigma (B, W), features (B, W, tokens, width)
                   -> f(x, sigma) (B, 4, bins, W * chunk_frames), W = 1 or 2 chunks
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from sideman.models.autoencoder import Autoencoder


class EncoderPart(nn.Module):
    """Compressed spectrogram -> bounded latents (encoder + bottleneck)."""

    def __init__(self, ae: Autoencoder):
        super().__init__()
        self.encoder, self.bottleneck = ae.encoder, ae.bottleneck

    def forward(self, spec: Tensor) -> Tensor:
        return self.bottleneck(self.encoder(spec))


class DecoderPart(nn.Module):
    """Latents -> per-chunk conditioning features of the consistency model."""

    def __init__(self, ae: Autoencoder):
        super().__init__()
        self.decoder = ae.decoder

    def forward(self, latents: Tensor) -> Tensor:
        return self.decoder(latents)


class DenoiserPart(nn.Module):
    """The consistency function f(x, sigma | features) on a window of one or two chunks."""

    def __init__(self, ae: Autoencoder):
        super().__init__()
        self.ae = ae

    def forward(self, x: Tensor, sigma: Tensor, features: Tensor) -> Tensor:
        return self.ae.denoise(x, sigma, features)


def parts(ae: Autoencoder) -> dict[str, tuple[nn.Module, tuple, list[str], list[str], dict]]:
    """name -> (module, example inputs, input names, output names, dynamic axes)."""
    cfg = ae.cfg
    g = torch.Generator().manual_seed(0)
    chunks = 2
    spec = torch.randn(1, 4, cfg.bins, chunks * cfg.chunk_frames, generator=g)
    latents = torch.randn(1, cfg.latent_dim, chunks * cfg.chunk_latents, generator=g)
    feats = torch.randn(1, 2, cfg.tokens_per_chunk, cfg.width, generator=g)
    x = torch.randn(1, 4, cfg.bins, 2 * cfg.chunk_frames, generator=g)
    sigma = torch.tensor([[0.8, 80.0]])
    return {
        "encoder": (EncoderPart(ae), (spec,), ["spec"], ["latents"],
                    {"spec": {0: "batch", 3: "frames"}, "latents": {0: "batch", 2: "latent_frames"}}),
        "decoder": (DecoderPart(ae), (latents,), ["latents"], ["features"],
                    {"latents": {0: "batch", 2: "latent_frames"}, "features": {0: "batch", 1: "chunks"}}),
        "denoiser": (DenoiserPart(ae), (x, sigma, feats), ["x", "sigma", "features"], ["denoised"],
                     {"x": {0: "batch", 3: "frames"}, "sigma": {0: "batch", 1: "window"},
                      "features": {0: "batch", 1: "window"}, "denoised": {0: "batch", 3: "frames"}}),
    }
