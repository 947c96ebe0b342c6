"""The autoencoder's decoding in numpy: STFT, chunking and the two-step decoding loop, the one
implementation (`sample_sequential`, `sample_parallel`) that the onnxruntime engine (`Codec`)
and the torch autoencoder (models.autoencoder.Autoencoder.decode) both run.

Audio is float32 (B, 2, N) at 48 kHz; latents float32 (B, 64, T) with T a whole number of
chunks (`chunk_latents` latents of `latent_hop` samples each).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sideman.numerics.spectral import ae_audio, ae_spectrogram

Run = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class CodecConfig:
    """The signal settings the bundle's manifest records for the autoencoder."""

    latent_dim: int
    latent_hop: int
    chunk_latents: int
    n_fft: int
    hop: int
    alpha: float
    beta: float
    sigma_min: float
    sigma_max: float
    refine_sigma: float
    sample_rate: int = 48000

    @property
    def chunk_samples(self) -> int:
        return self.chunk_latents * self.latent_hop

    @property
    def chunk_frames(self) -> int:
        return self.chunk_samples // self.hop

    @property
    def bins(self) -> int:
        return self.n_fft // 2

    def padded_length(self, samples: int) -> int:
        return max(1, math.ceil(samples / self.chunk_samples)) * self.chunk_samples

    def latent_frames(self, samples: int) -> int:
        return self.padded_length(samples) // self.latent_hop


class Codec:
    """encode/decode with three ONNX networks (see export.autoencoder_parts)."""

    def __init__(self, cfg: CodecConfig, encoder: Run, decoder: Run, denoiser: Run,
                 chunk_batch: int = 32, eq_db: np.ndarray | None = None):
        """eq_db: the output equaliser (bins,), dB on linear amplitude (see
        models.autoencoder.Autoencoder.equalize); None for none."""
        self.cfg, self.encoder, self.decoder, self.denoiser = cfg, encoder, decoder, denoiser
        self.chunk_batch = chunk_batch
        self.eq_gain = None
        if eq_db is not None:
            eq_db = np.asarray(eq_db, np.float32)
            if eq_db.shape != (cfg.n_fft // 2,):
                raise ValueError(f"eq_db must have {cfg.n_fft // 2} bins, not shape {eq_db.shape}")
            self.eq_gain = np.power(10.0, eq_db * (cfg.alpha / 20.0)).astype(np.float32)[:, None]

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """(B, 2, N) -> (B, latent_dim, latent_frames(N)); zero-padded to whole chunks."""
        cfg = self.cfg
        n = audio.shape[-1]
        padded = np.pad(audio.astype(np.float32), ((0, 0), (0, 0), (0, cfg.padded_length(n) - n)))
        spec = ae_spectrogram(padded, cfg.n_fft, cfg.hop, cfg.alpha, cfg.beta)
        step = self.chunk_batch * cfg.chunk_frames
        parts = [self.encoder({"spec": np.ascontiguousarray(spec[..., i:i + step])})
                 for i in range(0, spec.shape[-1], step)]
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def decode(self, latents: np.ndarray, length: int | None = None, steps: int = 2,
               rng: np.random.Generator | None = None, mode: str = "sequential") -> np.ndarray:
        """(B, latent_dim, T) -> (B, 2, length or T * latent_hop); `steps` 2 = two-step
        decoding; `mode` "sequential" (chunk by chunk) or "parallel" (all chunks batched),
        as Autoencoder.decode."""
        if mode not in ("sequential", "parallel"):
            raise ValueError(f"mode must be 'sequential' or 'parallel', not {mode!r}")
        cfg = self.cfg
        if latents.shape[-1] % cfg.chunk_latents:
            raise ValueError(f"{latents.shape[-1]} latent frames is not a whole number of "
                             f"chunks of {cfg.chunk_latents}")
        if steps not in (1, 2):
            raise ValueError("steps must be 1 or 2")
        rng = rng or np.random.default_rng(0)
        step = self.chunk_batch * cfg.chunk_latents
        feats = np.concatenate([self.decoder({"latents": np.ascontiguousarray(latents[..., i:i + step])})
                                for i in range(0, latents.shape[-1], step)], axis=1)
        randn = lambda shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
        if mode == "sequential":
            spec = sample_sequential(self._denoise, feats, cfg, steps, randn)
        else:
            spec = sample_parallel(self._denoise, feats, cfg, steps, randn, self.chunk_batch)
        if self.eq_gain is not None:
            spec = spec * self.eq_gain
        n = latents.shape[-1] * cfg.latent_hop
        return ae_audio(spec, cfg.n_fft, cfg.hop, cfg.alpha, cfg.beta, n if length is None else length)

    def _denoise(self, x: np.ndarray, sigmas: tuple[float, ...], feats: np.ndarray) -> np.ndarray:
        sigma = np.tile(np.asarray(sigmas, np.float32), (x.shape[0], 1))
        return self.denoiser({"x": x.astype(np.float32), "sigma": sigma,
                              "features": np.ascontiguousarray(feats, dtype=np.float32)})


Denoise = Callable[[np.ndarray, tuple[float, ...], np.ndarray], np.ndarray]
Randn = Callable[[tuple], np.ndarray]


def sample_sequential(denoise: Denoise, feats: np.ndarray, cfg: CodecConfig, steps: int, randn: Randn) -> np.ndarray:
    """M2L2's chunk-by-chunk decoding: features (B, n, Tk, W) -> spectrogram (B, 4, bins, n * chunk_frames).

    denoise(x (B, 4, bins, w * chunk_frames), sigmas (w,), features (B, w, Tk, W)) is the
    consistency denoiser on a window of w = 1 or 2 chunks; randn(shape) draws the noise.
    steps 2: each chunk is refined from refine_sigma beside the next one's first estimate;
    steps 1: one step per chunk, the previous chunk given clean."""
    b, n = feats.shape[:2]
    shape = (b, 4, cfg.bins, cfg.chunk_frames)
    renoise = math.sqrt(cfg.refine_sigma ** 2 - cfg.sigma_min ** 2)
    done: list[np.ndarray] = []
    first = denoise(cfg.sigma_max * randn(shape), (cfg.sigma_max,), feats[:, :1])
    for k in range(1, n):
        if steps == 2:
            prev, s_prev = first + renoise * randn(shape), cfg.refine_sigma
        else:
            prev, s_prev = first, cfg.sigma_min
        x = np.concatenate([prev, cfg.sigma_max * randn(shape)], axis=-1)
        out = denoise(x, (s_prev, cfg.sigma_max), feats[:, k - 1:k + 1])
        done.append(out[..., :cfg.chunk_frames] if steps == 2 else first)
        first = out[..., cfg.chunk_frames:]
    if steps == 1:
        done.append(first)
    elif n == 1:
        done.append(denoise(first + renoise * randn(shape), (cfg.refine_sigma,), feats))
    else:
        x = np.concatenate([done[-1], first + renoise * randn(shape)], axis=-1)
        out = denoise(x, (cfg.sigma_min, cfg.refine_sigma), feats[:, n - 2:])
        done.append(out[..., cfg.chunk_frames:])
    return np.concatenate(done, axis=-1)


def sample_parallel(denoise: Denoise, feats: np.ndarray, cfg: CodecConfig, steps: int, randn: Randn,
                    chunk_batch: int = 32) -> np.ndarray:
    """All chunks at once (three batched passes): features (B, n, Tk, W) -> spectrogram.

    Pass 1: every chunk from noise at sigma_max on its own (a one-chunk window, as the first
    chunk of every training window). Pass 2 (steps 2): every chunk re-noised to refine_sigma
    beside the previous chunk's pass-1 estimate given clean (sigma_min), so the refinement
    sees across the chunk border; the first chunk is refined alone. Noise is drawn pass 1
    then pass 2, chunks in order; denoise calls take at most chunk_batch windows."""
    b, n = feats.shape[:2]
    cf = cfg.chunk_frames
    shape = (b, n, 4, cfg.bins, cf)

    def run(x: np.ndarray, sigmas: tuple[float, ...], f: np.ndarray) -> np.ndarray:
        """x (B, m, 4, bins, w*cf), f (B, m, w, Tk, W) -> (B, m, 4, bins, w*cf)."""
        m, w = x.shape[1], len(sigmas)
        x, f = x.reshape(b * m, *x.shape[2:]), f.reshape(b * m, *f.shape[2:])
        out = [denoise(x[i:i + chunk_batch], sigmas, f[i:i + chunk_batch]) for i in range(0, b * m, chunk_batch)]
        return np.concatenate(out).reshape(b, m, 4, cfg.bins, w * cf)

    first = run(cfg.sigma_max * randn(shape), (cfg.sigma_max,), feats[:, :, None])
    if steps == 2:
        renoised = first + math.sqrt(cfg.refine_sigma ** 2 - cfg.sigma_min ** 2) * randn(shape)
        chunks = [run(renoised[:, :1], (cfg.refine_sigma,), feats[:, :1, None])]
        if n > 1:
            x = np.concatenate([first[:, :-1], renoised[:, 1:]], axis=-1)
            f = np.stack([feats[:, :-1], feats[:, 1:]], axis=2)
            chunks.append(run(x, (cfg.sigma_min, cfg.refine_sigma), f)[..., cf:])
        first = np.concatenate(chunks, axis=1)
    return first.transpose(0, 2, 3, 1, 4).reshape(b, 4, cfg.bins, n * cf)
