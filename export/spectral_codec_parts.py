"""The spectral codec as two exported networks; the engine computes the STFT features, the
phase and the inverse STFT in numpy (numerics.spectral_codec) around them.

    encoder.onnx   features (B, 2 * analysis_bins, frames) -> latents (B, C, frames / 2**levels)
    decoder.onnx   latents (B, C, T) -> log magnitudes (B, 2, bins, T * 2**levels + 1)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from sideman.models.spectral_codec import SpectralCodec


class EncoderPart(nn.Module):
    """Log-magnitude features -> bounded latents."""

    def __init__(self, codec: SpectralCodec):
        super().__init__()
        self.codec = codec

    def forward(self, features: Tensor) -> Tensor:
        return self.codec.encode_features(features)


class DecoderPart(nn.Module):
    """Latents -> log magnitudes of the synthesis STFT."""

    def __init__(self, codec: SpectralCodec):
        super().__init__()
        self.codec = codec

    def forward(self, latents: Tensor) -> Tensor:
        return self.codec.decode_spectrum(latents)


def parts(codec: SpectralCodec) -> dict[str, tuple[nn.Module, tuple, list[str], list[str], dict]]:
    """name -> (module, example inputs, input names, output names, dynamic axes)."""
    cfg = codec.config
    g = torch.Generator().manual_seed(0)
    latent_frames = 3
    features = torch.randn(1, 2 * cfg.analysis_bins, latent_frames * 2 ** cfg.levels, generator=g) - 6.0
    latents = torch.rand(1, cfg.latent_channels, latent_frames, generator=g) * 2 - 1
    return {
        "encoder": (EncoderPart(codec), (features,), ["features"], ["latents"],
                    {"features": {0: "batch", 2: "frames"}, "latents": {0: "batch", 2: "latent_frames"}}),
        "decoder": (DecoderPart(codec), (latents,), ["latents"], ["log_magnitude"],
                    {"latents": {0: "batch", 2: "latent_frames"}, "log_magnitude": {0: "batch", 3: "frames"}}),
    }


def export_codec(codec: SpectralCodec, out_dir, int8: bool = False) -> dict[str, dict]:
    """Write encoder.onnx and decoder.onnx (and int8 variants) of `codec` into out_dir;
    return name -> {"path", "sha256", io spec} as a bundle manifest records files."""
    from pathlib import Path

    from sideman.export.bundle_format import file_sha256
    from sideman.export.onnx_io import export_module, io_spec, to_int8

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (module, args, inputs, outputs, axes) in parts(codec.eval()).items():
        path = export_module(module, args, out / f"{name}.onnx", inputs, outputs, axes)
        files[name] = {"path": path.name, "sha256": file_sha256(path), **io_spec(path)}
        if int8:
            q = to_int8(path, out / f"{name}_int8.onnx")
            files[f"{name}_int8"] = {"path": q.name, "sha256": file_sha256(q), **io_spec(q)}
    return files
