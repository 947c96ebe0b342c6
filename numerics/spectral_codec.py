"""The spectral codec at run time, in numpy around its two exported networks (see
models.spectral_codec for the design and export.spectral_codec_parts for the parts):

    audio (B, 2, N) --log magnitudes of STFTs (features)--> encoder.onnx --> latents (B, C, N / latent_hop)
    latents --> decoder.onnx --> log magnitudes (B, 2, bins, frames) --phase from peaks, iSTFT--> audio

Audio is float32 at 48 kHz; lengths are padded with silence to whole latent hops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sideman.numerics.phase import audio_from_magnitude
from sideman.numerics.spectral import stft

Run = Callable[[dict[str, np.ndarray]], np.ndarray]
LOG_FLOOR = 1e-5  # magnitudes below this (about -100 dBFS per bin) read as silence
MAX_LOG_MAGNITUDE = 6.0  # the decoder's log magnitudes are clipped here (as in training)


@dataclass(frozen=True)
class SpectralCodecConfig:
    """The signal settings a bundle's manifest records for a spectral codec."""

    latent_dim: int
    latent_hop: int
    n_fft: int
    hop: int
    analysis_ffts: tuple[int, ...]
    sample_rate: int = 48000

    def padded_length(self, samples: int) -> int:
        return max(1, math.ceil(samples / self.latent_hop)) * self.latent_hop

    def latent_frames(self, samples: int) -> int:
        return self.padded_length(samples) // self.latent_hop


def features(audio: np.ndarray, analysis_ffts: tuple[int, ...], hop: int) -> np.ndarray:
    """Audio (B, 2, N) -> the encoder's input (B, 2 * sum(n_fft / 2), N / hop) float32: log
    magnitudes of one STFT per window length, Nyquist bin and closing frame dropped, the
    channels' bins stacked (channel-major), as models.spectral_codec.SpectralCodec.features."""
    frames = audio.shape[-1] // hop
    out = []
    for item in np.asarray(audio, np.float32):
        mags = [np.abs(stft(item, n_fft, hop))[:, :-1, :frames] for n_fft in analysis_ffts]
        out.append(np.log(np.maximum(np.concatenate(mags, axis=1), LOG_FLOOR)).reshape(-1, frames))
    return np.stack(out).astype(np.float32)


class SpectralCodec:
    """encode/decode with the two exported networks; the same interface as
    numerics.autoencoder.Codec (decode's steps, mode and rng are accepted and unused: the
    decoder is deterministic)."""

    def __init__(self, cfg: SpectralCodecConfig, encoder: Run, decoder: Run):
        self.cfg, self._encoder, self._decoder = cfg, encoder, decoder

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Audio (B, 2, N) -> latents (B, C, ceil(N / latent_hop)) float32."""
        audio = np.asarray(audio, np.float32)
        padded = np.zeros(audio.shape[:-1] + (self.cfg.padded_length(audio.shape[-1]),), np.float32)
        padded[..., :audio.shape[-1]] = audio
        return self._encoder({"features": features(padded, self.cfg.analysis_ffts, self.cfg.hop)})

    def decode(self, latents: np.ndarray, length: int | None = None, **_unused) -> np.ndarray:
        """Latents (B, C, T) -> audio (B, 2, length or T * latent_hop) float32."""
        log_mag = self._decoder({"latents": np.asarray(latents, np.float32)})
        magnitude = np.exp(np.minimum(log_mag.astype(np.float64), MAX_LOG_MAGNITUDE))
        n = latents.shape[-1] * self.cfg.latent_hop
        audio = np.stack([audio_from_magnitude(m, self.cfg.n_fft, self.cfg.hop, n) for m in magnitude])
        return audio[..., :n if length is None else length].astype(np.float32)
