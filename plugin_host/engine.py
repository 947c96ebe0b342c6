"""The generation engine: a model bundle run with numpy + onnxruntime, no torch.

    context audio --codec.encode--> context latents --+
    prompt --MiniLM--> clap_text --bridge (Heun)--+   |
    style audio --log-mel--> clap_audio ----------+--> C-DiT consistency sampling (5 steps,
                                                       guidance, controls) --codec.decode--> stem

Implements plugin_host.engine_api.Engine. Audio is float32 (2, samples) at 48 kHz.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sideman.export.bundle_format import BAND_CODEC
from sideman.numerics.autoencoder import Codec, CodecConfig
from sideman.numerics.band_codec import BandCodec, BandCodecConfig
from sideman.numerics.guidance import karras_levels
from sideman.numerics.sampler import GuidedConsistency, SamplerSettings, heun, sample_latents, slerp
from sideman.numerics.spectral import log_mel

from sideman.plugin_host.bundle import Bundle
from sideman.plugin_host.engine_api import Controls, GenerationSettings, Progress


class OnnxEngine:
    """Loads a bundle once and serves any number of generations."""

    def __init__(self, bundle: str | Path | Bundle, providers: list[str] | None = None,
                 intra_threads: int = 0, precision: str = "auto"):
        """precision: which variant of the heavy parts runs (plugin_host.bundle.PRECISIONS):
        "auto" (fp16 on CUDA when the bundle has it, else fp32), "fp32", "fp16" or "int8"."""
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(
            bundle, providers, intra_threads, precision=precision)
        man = self.bundle.manifest
        if man.get("codec", {}).get("kind") == BAND_CODEC:  # signal processing only: no networks
            self.codec = BandCodec(BandCodecConfig(**{k: v for k, v in man["codec"].items() if k != "kind"}))
            self.decode_steps, self.decode_mode = 1, "deterministic"
        else:
            ae = man["autoencoder"]
            eq_db = None
            if self.bundle.has("decoder_eq"):  # bundles before the equaliser have none
                with np.load(self.bundle.root / man["files"]["decoder_eq"]["path"]) as f:
                    eq_db = f["eq_db"]
            self.codec = Codec(CodecConfig(**{k: v for k, v in ae.items() if k not in ("decode_steps", "decode_mode")}),
                               self.bundle.runner("encoder"), self.bundle.runner("decoder"),
                               self.bundle.runner("denoiser"), eq_db=eq_db)
            self.decode_steps = ae.get("decode_steps", 2)
            self.decode_mode = ae.get("decode_mode", "sequential")  # bundles before the field: M2L2's loop
        self.sample_rate = int(man["sample_rate"])
        self.bundle_id = self.bundle.bundle_id
        self.max_steps = int(man["dit"]["max_steps"])
        self.default_steps = int(man["dit"]["default_steps"])
        self.clap_dim = int(man["clap_dim"])
        self.latent_scale = float(man["dit"].get("latent_scale", 1.0))  # DiT units = scale * codec units
        self._step = self.bundle.runner("dit_step")
        self._text_encoder = None
        self._bridge_norm = None

    # ------------------------------------------------------------------ CLAP

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """(N, 512) unit rows in the house CLAP space."""
        if not self.bundle.has("clap_text"):
            raise ValueError("this bundle has no text tower: prompts are not available")
        if self._text_encoder is None:
            from sideman.numerics.minilm import MiniLM
            self._text_encoder = MiniLM()
        return self.bundle.runner("clap_text")({"sentence": self._text_encoder.encode(texts)})

    def embed_audio(self, clips: list[np.ndarray]) -> np.ndarray:
        """(N, 512) unit rows from (2, S) or (S,) 48 kHz clips, centre-cropped or looped to
        the tower's clip length."""
        if not self.bundle.has("clap_audio"):
            raise ValueError("this bundle has no audio tower: style references are not available")
        c = self.bundle.manifest["clap"]
        length = int(round(c["clip_seconds"] * c["sample_rate"]))
        waves = np.stack([_fit_clip(np.asarray(clip, np.float32), length) for clip in clips])
        mel = log_mel(waves, c["sample_rate"], c["n_fft"], c["hop"], c["n_mels"], c["f_min"], c["f_max"])
        return self.bundle.runner("clap_audio")({"log_mel": mel})

    def bridge(self, text_emb: np.ndarray | None, n: int = 1, seed: int = 0,
               steps: int | None = None) -> np.ndarray:
        """Audio-like CLAP embeddings (n, 512) sampled by the bridge (Heun), unit rows.

        text_emb: (512,) text embedding, or None for unconditional samples (CLAP_A*).
        """
        man = self.bundle.manifest["bridge"]
        if self._bridge_norm is None:  # mean and std of the bridge's training embeddings
            with np.load(self.bundle.root / self.bundle.manifest["files"]["bridge_norm"]["path"]) as f:
                self._bridge_norm = {"mean": f["mean"], "std": f["std"]}
        norm = self._bridge_norm
        run = self.bundle.runner("bridge_step")
        rng = np.random.default_rng(seed)
        levels = karras_levels(steps or man["steps"], man["sigma_min"], man["sigma_max"], man["rho"])
        text = np.zeros((n, self.clap_dim), np.float32) if text_emb is None else \
            np.tile(text_emb.reshape(1, -1) / np.linalg.norm(text_emb), (n, 1)).astype(np.float32)
        keep = np.full((n,), 0.0 if text_emb is None else 1.0, np.float32)

        def denoise(x, sigma):
            return run({"x": x.astype(np.float32), "sigma": np.full((n,), sigma, np.float32),
                        "text": text, "keep": keep})

        x = heun(denoise, levels[0] * rng.standard_normal((n, self.clap_dim)), levels)
        emb = x * (norm["std"] / man["sigma_data"]) + norm["mean"]
        return (emb / np.linalg.norm(emb, axis=-1, keepdims=True)).astype(np.float32)

    def clap_condition(self, prompt: str, style: np.ndarray | None, seed: int,
                       mix: float = 0.5) -> np.ndarray | None:
        """(1, 512) CLAP condition from a prompt (through the bridge when the bundle has one)
        and/or a style reference (slerp by `mix` when both), or None for neither."""
        parts = []
        if prompt.strip():
            text = self.embed_text([prompt])[0]
            parts.append(self.bridge(text, 1, seed)[0] if self.bundle.has("bridge_step") else text)
        if style is not None:
            parts.append(self.embed_audio([style])[0])
        if not parts:
            return None
        emb = parts[0] if len(parts) == 1 else slerp(parts[0], parts[1], mix)
        return emb.reshape(1, -1).astype(np.float32)

    # ------------------------------------------------------------------ generation

    def reconstruct(self, audio: np.ndarray, seed: int = 0) -> np.ndarray:
        """(2, N) or (N,) 48 kHz audio through the autoencoder alone: encoded, then decoded
        with the bundle's decoding steps and mode (noise seeded by `seed`); (2, N)."""
        n = np.asarray(audio).shape[-1]
        if n <= 0:
            raise ValueError("audio is empty")
        latents = self.codec.encode(_fit(audio, n)[None])
        return self.codec.decode(latents, length=n, steps=self.decode_steps,
                                 rng=np.random.default_rng(seed), mode=self.decode_mode)[0]

    def generate(self, context: np.ndarray | None, seconds: float, settings: GenerationSettings,
                 progress: Progress | None = None, controls: Controls = Controls()) -> np.ndarray:
        """A stem (2, round(seconds * 48000)) fitting `context` (2, N) or None.

        progress(step, total) after each sampling step: total is the number of steps sampled
        (`settings.steps`, fewer for a variation); decoding follows the last."""
        if not 1 <= settings.steps <= self.max_steps:
            raise ValueError(f"steps must be within 1..{self.max_steps}, got {settings.steps}")
        n = int(round(seconds * self.sample_rate))
        if n <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        frames = self.codec.cfg.latent_frames(n)
        ctx_latents = None
        if context is not None:
            ctx_latents = self.codec.encode(_fit(context, n)[None]) * self.latent_scale
        if controls.clap_embedding is not None:
            clap = np.asarray(controls.clap_embedding, np.float32).reshape(1, -1)
        else:
            clap = self.clap_condition(settings.prompt, settings.style_audio, settings.seed, controls.clap_mix)
        f = GuidedConsistency(self._step, ctx_latents, clap, settings.guidance_context,
                              settings.guidance_clap, (self.codec.cfg.latent_dim, frames), self.clap_dim)
        take = keep = None
        if controls.take is not None:
            take = self.codec.encode(_fit(controls.take, n)[None]) * self.latent_scale
        if controls.keep:
            keep = np.zeros(frames, bool)
            hop = self.codec.cfg.latent_hop / self.sample_rate
            for start, end in controls.keep:
                keep[max(0, int(np.floor(start / hop))):int(np.ceil(end / hop))] = True
        rng = np.random.default_rng(settings.seed)
        latents = sample_latents(f, (1, self.codec.cfg.latent_dim, frames),
                                 SamplerSettings(steps=settings.steps, w_context=settings.guidance_context,
                                                 w_clap=settings.guidance_clap, strength=controls.strength,
                                                 loop=controls.loop),
                                 rng, take, keep, progress)
        return self.codec.decode(latents / self.latent_scale, length=n, steps=self.decode_steps, rng=rng,
                                 mode=self.decode_mode)[0]


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """(2, N) or (N,) -> (2, n): cropped or zero-padded at the end."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        audio = np.stack([audio, audio])
    out = np.zeros((2, n), np.float32)
    out[:, :min(n, audio.shape[1])] = audio[:2, :n]
    return out


def _fit_clip(clip: np.ndarray, length: int) -> np.ndarray:
    """Mono clip of exactly `length`: downmix, centre crop, or repeat-pad short clips."""
    mono = clip.mean(axis=0) if clip.ndim == 2 else clip
    if len(mono) == 0:
        return np.zeros(length, np.float32)
    if len(mono) >= length:
        start = (len(mono) - length) // 2
        return mono[start:start + length]
    return np.tile(mono, -(-length // len(mono)))[:length]
