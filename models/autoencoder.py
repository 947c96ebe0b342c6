"""Stereo consistency autoencoder in the style of Music2Latent2 (paper section 3.1).

Signal path (48 kHz stereo; ``N`` samples padded with zeros to whole chunks)::

    audio (B, 2, N) --STFT, beta|X|^alpha--> spec (B, 4, 1024, N/512)
        --Encoder--> y (B, 64, N/4096) --a*tanh(y/a)--> latents z (B, 64, N/4096)
        --Decoder--> features, one per spectrogram patch
        --ConsistencyNet, 2 steps, chunk by chunk--> spec --iSTFT--> audio (B, 2, N)

- STFT: Hann 2048, hop 512, so one latent (4096 samples, 85.3 ms, 11.72 latents/s) owns
  exactly 8 frames; Nyquist bin dropped (1024 bins); re/im of both channels = 4 channels.
  A stereo signal gives ONE latent sequence: 2 x 4096 samples -> 64 values (128x).
- Chunks: ``chunk_latents`` = 3 latents (12288 samples, 256 ms; 117 = 39 x 3, so a 10-s
  training window of 117 latents is whole chunks). The encoder turns the patch tokens of a
  chunk, plus ``chunk_latents`` learned summary tokens, into the chunk's summary
  embeddings; it sees only its own chunk, so latents are chunk-causal (and a window cut
  from a long encoding at a chunk border equals the window encoded alone), up to the STFT
  halo: frames reach 1024 samples before and ``lookahead`` = 512 samples after a chunk.
- Bottleneck: ``z = a tanh(y / a)`` with ``a`` = ``latent_bound`` = 3 and, in training, a
  penalty that holds the per-channel RMS of ``y`` in [0.5, 1.5], i.e. in the near-linear part
  of the tanh: the latents are bounded for the DiT yet cannot pile up at +-a (the
  saturation failure of stereo reimplementations with a plain tanh).
- Decoder: per chunk, learned query tokens (one per spectrogram patch) attend to the
  chunk's latents; the outputs condition the consistency model additively.
- Consistency model (ConsistencyNet, a DiT with AdaLN-Zero): a window of the previous and
  the current chunk, each with its own noise level, chunk-causal attention (the previous
  chunk does not see the current one). Boundary-condition scalings
  ``c_skip = sd^2/((s-smin)^2+sd^2)``, ``c_out = sd (s-smin)/sqrt(s^2+sd^2)``,
  ``c_in = 1/sqrt(s^2+sd^2)``, ``c_noise = ln(s)/4``; ``sd`` = ``sigma_data`` = 0.2, the
  RMS of the compressed spectrogram over training windows of our corpus (0.18 measured;
  Music2Latent's 0.5 suits mastered music, about 13 dB louder than our stems and mixes).
- Two-step decoding (M2L2): chunk ``k`` is first generated from noise at ``sigma_max`` while
  the window's first slot holds chunk ``k-1``'s first estimate re-noised to
  ``refine_sigma``; the same pass returns the refined chunk ``k-1`` (second step, no extra
  cost). One more pass refines the last chunk.
- Output equaliser: a fixed gain per frequency bin (buffer ``eq_db``) on the decoded
  spectrogram, measured after training by ``training.decoder_eq`` so that the decoded
  audio's long-term spectrum matches the input's (a briefly trained consistency decoder
  comes out 8-20 dB quiet, most around 1.5 kHz); zero until measured.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sideman.models.checkpoint_io import atomic_torch_save
from sideman.models.ae_blocks import (AdaLNBlock, Block, FinalLayer, NoiseEmbedder, chunk_causal_mask,
                        patchify, sincos_2d, unpatchify)
from sideman.models.stft import SpectralTransform
from sideman.numerics.autoencoder import CodecConfig, sample_parallel, sample_sequential

__all__ = ["AutoencoderConfig", "PRESETS", "DECODE_MODES", "Autoencoder", "Encoder", "Bottleneck", "Decoder",
           "ConsistencyNet", "save_autoencoder", "load_autoencoder", "count_parameters",
           "to_chunks", "from_chunks", "per_frame"]

CHECKPOINT_FORMAT = "sideman-autoencoder-1"
DECODE_MODES = ("sequential", "parallel")
CONFIG_FILE = "autoencoder.json"


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture and signal settings. Lengths in samples at ``sample_rate`` unless
    named frames (STFT frames) or latents."""

    width: int = 192
    heads: int = 3
    enc_depth: int = 3
    dec_depth: int = 3
    cm_depth: int = 6
    mlp_ratio: float = 4.0
    freq_patch: int = 32          # bins per patch
    time_patch: int = 8           # frames per patch (8 frames = one latent)
    chunk_latents: int = 3
    latent_dim: int = 64
    latent_hop: int = 4096
    sample_rate: int = 48000
    n_fft: int = 2048
    hop: int = 512
    alpha: float = 0.65
    beta: float = 0.34
    sigma_data: float = 0.2       # RMS of the compressed spectrogram (corpus windows: 0.18)
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    latent_bound: float = 3.0
    refine_sigma: float = 0.8     # re-noising level of the second decoding step

    def __post_init__(self) -> None:
        if self.latent_hop % self.hop:
            raise ValueError("latent_hop must be a whole number of STFT hops")
        if self.bins % self.freq_patch or self.chunk_frames % self.time_patch:
            raise ValueError("patches must tile a chunk's spectrogram")
        if self.width % self.heads or self.width % 4:
            raise ValueError("width must be divisible by heads and by 4")

    @property
    def bins(self) -> int:
        return self.n_fft // 2

    @property
    def frames_per_latent(self) -> int:
        return self.latent_hop // self.hop

    @property
    def chunk_frames(self) -> int:
        return self.chunk_latents * self.frames_per_latent

    @property
    def chunk_samples(self) -> int:
        return self.chunk_latents * self.latent_hop

    @property
    def time_patches(self) -> int:
        return self.chunk_frames // self.time_patch

    @property
    def freq_patches(self) -> int:
        return self.bins // self.freq_patch

    @property
    def tokens_per_chunk(self) -> int:
        return self.time_patches * self.freq_patches

    @property
    def patch_dim(self) -> int:
        return 4 * self.freq_patch * self.time_patch

    @property
    def lookahead(self) -> int:
        """Samples past a chunk's end that its STFT frames (hence its latents) see."""
        return self.n_fft // 2 - self.hop


PRESETS: dict[str, AutoencoderConfig] = {
    # Full scale, for GPU training: 108.9M parameters (encoder 25.5M, decoder 25.3M,
    # consistency model 58.2M); 192 tokens (16 bins x 8 frames) per 256-ms chunk.
    "paper": AutoencoderConfig(width=512, heads=8, enc_depth=8, dec_depth=8, cm_depth=12,
                               freq_patch=16),
    # Trains on 2 CPU cores in hours: 2.48M parameters (encoder 0.54M, decoder 0.41M,
    # consistency model 1.53M); 96 tokens (32 bins x 8 frames) per chunk.
    "small": AutoencoderConfig(width=128, heads=2, enc_depth=2, dec_depth=2, cm_depth=4,
                               freq_patch=32),
    # Unit tests: 0.68M parameters; 48 tokens (64 bins x 8 frames) per chunk.
    "tiny": AutoencoderConfig(width=64, heads=2, enc_depth=1, dec_depth=1, cm_depth=2,
                              freq_patch=64),
}


def per_frame(values: Tensor, chunk_frames: int) -> Tensor:
    """Per-chunk values ``(B, W)`` -> ``(B, 1, 1, W * chunk_frames)``, broadcastable
    against a spectrogram window."""
    return values.float().repeat_interleave(chunk_frames, dim=1)[:, None, None, :]


def to_chunks(spec: Tensor, chunk_frames: int) -> Tensor:
    """``(B, C, F, n * chunk_frames)`` -> ``(B * n, C, F, chunk_frames)``."""
    b, c, f, t = spec.shape
    n = t // chunk_frames
    return spec.reshape(b, c, f, n, chunk_frames).permute(0, 3, 1, 2, 4).reshape(b * n, c, f, chunk_frames)


def from_chunks(x: Tensor, batch: int) -> Tensor:
    """Inverse of :func:`to_chunks`: ``(B * n, C, F, cf)`` -> ``(B, C, F, n * cf)``."""
    bn, c, f, cf = x.shape
    n = bn // batch
    return x.reshape(batch, n, c, f, cf).permute(0, 2, 3, 1, 4).reshape(batch, c, f, n * cf)


class Encoder(nn.Module):
    """Spectrogram ``(B, 4, bins, n * chunk_frames)`` -> pre-bottleneck latents
    ``y (B, latent_dim, n * chunk_latents)``; each chunk is encoded on its own."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch_dim, cfg.width)
        self.register_buffer("pos", sincos_2d(cfg.time_patches, cfg.freq_patches, cfg.width),
                             persistent=False)
        self.summary = nn.Parameter(torch.zeros(1, cfg.chunk_latents, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.enc_depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, cfg.latent_dim)

    def forward(self, spec: Tensor) -> Tensor:
        cfg, b = self.cfg, spec.shape[0]
        chunks = to_chunks(spec, cfg.chunk_frames)
        tokens = self.embed(patchify(chunks, cfg.freq_patch, cfg.time_patch)) + self.pos
        x = torch.cat([tokens, self.summary.expand(chunks.shape[0], -1, -1).to(tokens.dtype)], dim=1)
        for block in self.blocks:
            x = block(x)
        y = self.out(self.norm(x[:, -cfg.chunk_latents:]))          # (B*n, C, latent_dim)
        return y.reshape(b, -1, cfg.latent_dim).transpose(1, 2)


class Bottleneck(nn.Module):
    """``z = a tanh(y / a)``; :meth:`penalty` keeps each channel's RMS of ``y`` in
    ``[low, high]`` (squared log-excess, zero inside the band)."""

    def __init__(self, bound: float, low: float = 0.5, high: float = 1.5) -> None:
        super().__init__()
        self.bound, self.low, self.high = bound, low, high

    def forward(self, y: Tensor) -> Tensor:
        return self.bound * torch.tanh(y / self.bound)

    def penalty(self, y: Tensor) -> Tensor:
        """``y (B, D, T)`` -> 0-d penalty averaged over the ``D`` channels."""
        log_rms = 0.5 * y.float().square().mean(dim=(0, 2)).add(1e-8).log()
        excess = torch.relu(log_rms - math.log(self.high)) + torch.relu(math.log(self.low) - log_rms)
        return excess.square().mean()


class Decoder(nn.Module):
    """Latents ``(B, latent_dim, n * chunk_latents)`` -> features
    ``(B, n, tokens_per_chunk, width)``: per chunk, one query token per spectrogram patch
    attends to the chunk's latent tokens."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.latent_dim, cfg.width)
        self.slots = nn.Parameter(torch.zeros(1, cfg.chunk_latents, cfg.width))
        self.query = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.register_buffer("pos", sincos_2d(cfg.time_patches, cfg.freq_patches, cfg.width),
                             persistent=False)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.dec_depth))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, z: Tensor) -> Tensor:
        cfg, b = self.cfg, z.shape[0]
        latents = z.transpose(1, 2).reshape(-1, cfg.chunk_latents, cfg.latent_dim)
        latents = self.embed(latents) + self.slots
        queries = (self.query + self.pos).expand(latents.shape[0], -1, -1).to(latents.dtype)
        x = torch.cat([queries, latents], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, :cfg.tokens_per_chunk]).reshape(b, -1, cfg.tokens_per_chunk, cfg.width)


class ConsistencyNet(nn.Module):
    """The network ``F`` of the consistency function on a window of ``W`` <= 2 chunks.

    ``x (B, 4, bins, W * chunk_frames)`` (already scaled by ``c_in``), ``c_noise (B, W)``,
    ``features (B, W, tokens_per_chunk, width)`` -> ``(B, 4, bins, W * chunk_frames)``.
    Chunk ``w`` attends to chunks ``<= w`` only.
    """

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch_dim, cfg.width)
        self.register_buffer("pos", sincos_2d(cfg.time_patches, cfg.freq_patches, cfg.width),
                             persistent=False)
        self.slot = nn.Parameter(torch.zeros(2, 1, cfg.width))   # first / second chunk of window
        self.noise = NoiseEmbedder(cfg.width)
        self.blocks = nn.ModuleList(AdaLNBlock(cfg.width, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.cm_depth))
        self.final = FinalLayer(cfg.width, cfg.patch_dim)

    def forward(self, x: Tensor, c_noise: Tensor, features: Tensor) -> Tensor:
        cfg = self.cfg
        b, w = c_noise.shape
        tokens = self.embed(patchify(to_chunks(x, cfg.chunk_frames), cfg.freq_patch, cfg.time_patch))
        tokens = tokens.reshape(b, w, cfg.tokens_per_chunk, cfg.width) + self.pos + self.slot[:w]
        h = (tokens + features).reshape(b, w * cfg.tokens_per_chunk, cfg.width)
        cond = self.noise(c_noise)                                   # (B, W, width)
        mask = chunk_causal_mask(w, cfg.tokens_per_chunk, h.device) if w > 1 else None
        for block in self.blocks:
            h = block(h, cond, mask)
        out = self.final(h, cond).reshape(b * w, cfg.tokens_per_chunk, cfg.patch_dim)
        out = unpatchify(out, 4, cfg.bins, cfg.chunk_frames, cfg.freq_patch, cfg.time_patch)
        return from_chunks(out, b)


class Autoencoder(nn.Module):
    """The whole codec: :meth:`encode`, :meth:`decode`, and :meth:`forward` for training."""

    def __init__(self, cfg: AutoencoderConfig = PRESETS["small"]) -> None:
        super().__init__()
        self.cfg = cfg
        self.transform = SpectralTransform(cfg.n_fft, cfg.hop, cfg.alpha, cfg.beta)
        self.encoder = Encoder(cfg)
        self.bottleneck = Bottleneck(cfg.latent_bound)
        self.decoder = Decoder(cfg)
        self.cm = ConsistencyNet(cfg)
        # Output equaliser (dB of linear amplitude per frequency bin), applied to the decoded
        # spectrogram; measured after training (training.decoder_eq), zero = none.
        self.register_buffer("eq_db", torch.zeros(cfg.bins))
        self.initialize()

    def initialize(self) -> None:
        """Xavier-uniform linear layers with zero bias; learned tokens N(0, 0.02^2); the
        noise MLP N(0, 0.02^2); AdaLN modulation and the output layer zero (AdaLN-Zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.encoder.summary, self.decoder.slots, self.decoder.query, self.cm.slot):
            nn.init.normal_(p, std=0.02)
        for m in self.cm.noise.mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        for block in self.cm.blocks:
            nn.init.zeros_(block.modulation[-1].weight)
            nn.init.zeros_(block.modulation[-1].bias)
        for layer in (self.cm.final.modulation[-1], self.cm.final.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # -- geometry ----------------------------------------------------------------------
    @property
    def chunk_samples(self) -> int:
        """The length unit of encode: inputs are whole multiples of it (the codec interface
        training.dit_data uses, shared with models.spectral_codec.SpectralCodec)."""
        return self.cfg.chunk_samples

    @property
    def latent_channels(self) -> int:
        return self.cfg.latent_dim

    def padded_length(self, samples: int) -> int:
        """Samples after zero padding to whole chunks (at least one chunk)."""
        c = self.cfg.chunk_samples
        return max(1, math.ceil(samples / c)) * c

    def latent_frames(self, samples: int) -> int:
        """Latent frames for ``samples`` of audio: ``chunk_latents * ceil(N / chunk)``."""
        return self.padded_length(samples) // self.cfg.latent_hop

    def _pad(self, audio: Tensor) -> Tensor:
        n = audio.shape[-1]
        return nn.functional.pad(audio, (0, self.padded_length(n) - n))

    # -- consistency function ----------------------------------------------------------
    def denoise(self, x: Tensor, sigma: Tensor, features: Tensor) -> Tensor:
        """``f(x, sigma)``: ``x (B, 4, bins, W*cf)`` noisy spectrogram window, ``sigma (B, W)``
        per-chunk noise levels, ``features (B, W, Tk, width)`` -> clean estimate, same shape
        as ``x``, float32. ``f(x, sigma_min) = x`` exactly."""
        cfg = self.cfg
        s = per_frame(sigma, cfg.chunk_frames)
        sd, smin = cfg.sigma_data, cfg.sigma_min
        c_skip = sd ** 2 / ((s - smin) ** 2 + sd ** 2)
        c_out = sd * (s - smin) / (s ** 2 + sd ** 2).sqrt()
        c_in = 1.0 / (s ** 2 + sd ** 2).sqrt()
        out = self.cm((c_in * x).to(features.dtype), sigma.float().log() / 4, features)
        return c_skip * x.float() + c_out * out.float()

    # -- training ----------------------------------------------------------------------
    def forward(self, audio: Tensor, sigma: Tensor, sigma_teacher: Tensor,
                noise: Tensor) -> dict[str, Tensor]:
        """One consistency-training evaluation on windows of ``W`` <= 2 chunks.

        Args:
            audio: ``(B, 2, W * chunk_samples)``.
            sigma, sigma_teacher: ``(B, W)`` student and teacher noise levels per chunk.
            noise: ``(B, 4, bins, W * chunk_frames)`` standard normal, shared by both.
        Returns:
            ``student`` (with gradients), ``teacher`` (stop-gradient, same network and
            features), ``y`` pre-bottleneck latents ``(B, latent_dim, W * chunk_latents)``.
        """
        spec = self.transform(audio)
        y = self.encoder(spec)
        features = self.decoder(self.bottleneck(y))
        cf = self.cfg.chunk_frames
        with torch.no_grad():
            teacher = self.denoise(spec + per_frame(sigma_teacher, cf) * noise, sigma_teacher,
                                   features.detach())
        student = self.denoise(spec + per_frame(sigma, cf) * noise, sigma, features)
        return {"student": student, "teacher": teacher, "y": y}

    # -- inference ---------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, audio: Tensor, chunk_batch: int = 64) -> Tensor:
        """``audio (B, 2, N)`` at 48 kHz -> latents ``(B, latent_dim, latent_frames(N))``.

        Deterministic; padded with zeros to whole chunks; analysed and encoded
        ``chunk_batch`` chunks at a time (each piece with its STFT context), so memory
        does not grow with the length and the result does not depend on ``chunk_batch``.
        """
        audio = self._pad(audio.float())
        half, step = self.cfg.n_fft // 2, chunk_batch * self.cfg.chunk_samples
        context = nn.functional.pad(audio, (half, half))
        parts = [self.bottleneck(self.encoder(self.transform.frames(context[..., a:a + step + 2 * half])))
                 for a in range(0, audio.shape[-1], step)]
        return torch.cat(parts, dim=-1).float()

    @torch.no_grad()
    def decode(self, z: Tensor, length: int | None = None, steps: int = 2,
               rng: np.random.Generator | None = None, chunk_batch: int = 64,
               refine_sigma: float | None = None, mode: str = "sequential") -> Tensor:
        """Latents ``(B, latent_dim, T)`` (``T`` whole chunks) -> audio ``(B, 2, length)``.

        ``steps`` = 2: the two-step decoding (each chunk refined from ``refine_sigma``,
        default ``cfg.refine_sigma``); ``steps`` = 1: one step per chunk, the previous
        chunk given clean. ``length`` defaults to ``T * latent_hop``. The noise comes from
        ``rng`` (default: seeded with 0, so decoding is deterministic). ``mode``
        "sequential": M2L2's chunk-by-chunk loop (one network call per chunk); "parallel":
        three batched calls in all. The loops are numerics.autoencoder's, the engine's own.
        """
        if mode not in DECODE_MODES:
            raise ValueError(f"mode must be one of {DECODE_MODES}, not {mode!r}")
        cfg = self.cfg
        if z.shape[-1] % cfg.chunk_latents:
            raise ValueError(f"{z.shape[-1]} latent frames is not a whole number of chunks "
                             f"of {cfg.chunk_latents}")
        if steps not in (1, 2):
            raise ValueError("steps must be 1 or 2")
        rng = np.random.default_rng(0) if rng is None else rng
        z, dev = z.float(), z.device
        feats = torch.cat([self.decoder(z[..., i:i + chunk_batch * cfg.chunk_latents])
                           for i in range(0, z.shape[-1], chunk_batch * cfg.chunk_latents)], dim=1)

        def denoise(x: np.ndarray, sigmas: tuple[float, ...], f: np.ndarray) -> np.ndarray:
            sig = torch.tensor(sigmas, device=dev).expand(x.shape[0], len(sigmas))
            return self.denoise(torch.from_numpy(x).to(dev), sig, torch.from_numpy(f).to(dev)).float().cpu().numpy()

        signal = self.codec_config(refine_sigma)
        randn = lambda shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
        feats = feats.float().cpu().numpy()
        spec = (sample_sequential(denoise, feats, signal, steps, randn) if mode == "sequential"
                else sample_parallel(denoise, feats, signal, steps, randn, chunk_batch))
        n = z.shape[-1] * cfg.latent_hop
        return self.transform.inverse(self.equalize(torch.from_numpy(spec).to(dev)), n if length is None else length)

    def codec_config(self, refine_sigma: float | None = None) -> CodecConfig:
        """The signal settings of this autoencoder, as the bundle's manifest records them."""
        c = self.cfg
        return CodecConfig(latent_dim=c.latent_dim, latent_hop=c.latent_hop, chunk_latents=c.chunk_latents,
                           n_fft=c.n_fft, hop=c.hop, alpha=c.alpha, beta=c.beta, sigma_min=c.sigma_min,
                           sigma_max=c.sigma_max, refine_sigma=refine_sigma or c.refine_sigma)

    def equalize(self, spec: Tensor) -> Tensor:
        """The output equaliser on a compressed spectrogram ``(B, 4, bins, T)``: a gain of
        ``eq_db`` dB on linear amplitude is ``alpha * eq_db`` dB on compressed amplitude."""
        gain = torch.pow(10.0, self.eq_db.float() * (self.cfg.alpha / 20.0))
        return spec * gain[:, None]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_autoencoder(model: Autoencoder, path: str | Path, **extra) -> None:
    """Write ``{format, config, state_dict, **extra}`` atomically (a standalone file that
    :func:`load_autoencoder` reads without the training run)."""
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "config": asdict(model.cfg),
                       "state_dict": model.state_dict(), **extra}, path)


def config_from_dict(raw: dict) -> AutoencoderConfig:
    names = {f.name for f in fields(AutoencoderConfig)}
    return replace(AutoencoderConfig(), **{k: v for k, v in raw.items() if k in names})


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu",
                     ema: bool = True) -> Autoencoder:
    """Load an exported autoencoder file, or a trainer checkpoint (``last.pt``, EMA
    weights unless ``ema=False``) whose run folder holds ``autoencoder.json``."""
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") == CHECKPOINT_FORMAT:
        cfg, weights = config_from_dict(state["config"]), state["state_dict"]
    elif "model" in state and "ema" in state:
        config_file = path.parent / CONFIG_FILE
        if not config_file.is_file():
            raise FileNotFoundError(f"{path}: trainer checkpoint without {CONFIG_FILE} beside it")
        cfg = config_from_dict(json.loads(config_file.read_text())["model"])
        if ema:
            weights = {k.removeprefix("module."): v for k, v in state["ema"].items()
                       if k.startswith("module.")}
        else:
            weights = state["model"]
    else:
        raise ValueError(f"{path}: not an autoencoder checkpoint")
    model = Autoencoder(cfg)
    weights = dict(weights)
    weights.setdefault("eq_db", torch.zeros(cfg.bins))  # checkpoints from before the equaliser
    model.load_state_dict(weights)
    return model.to(device).eval()
