"""A frame-rate convolutional codec on STFT magnitudes, sized for CPU training.

The consistency autoencoder (`models.autoencoder`, Music2Latent2-style) needs GPU-scale
training to make notes; on 2 CPU cores it learned envelopes and onsets but no harmonics.
This codec is the deterministic alternative the codec issue measures:

    audio (B, 2, N) -> STFT (n_fft 2048, hop 512, Hann) -> log magnitude (B, 2*1024, T)
      -> encoder: 1x1 projection, ConvNeXt-1d blocks, 3 stride-2 steps (hop 512 -> 4096)
      -> latent (B, 64, T/8), tanh-bounded: the paper's 64 channels at a 4096-sample hop
      -> decoder: the mirror image, transposed-conv upsampling -> log magnitude (B, 2*1024, T)

Phase is not coded: the decoder predicts magnitudes and the audio comes back by
Griffin-Lim (`griffin_lim`). The objective (`codec_loss`) is L1 on log magnitude (the
envelope, onsets, silence) plus spectral convergence on linear magnitude, which weighs
the loud harmonic peaks that carry pitch; without the second term a codec of this shape
learns no harmonic lines (design notes, "What a small codec learns on these 2 cores").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
import torch.nn.functional as F

LOG_FLOOR = 1e-5  # magnitudes below this (about -100 dBFS per bin) read as silence


@dataclass(frozen=True)
class CodecConfig:
    """Shape of a spectral codec. levels: stride-2 steps (hop * 2**levels is the latent hop)."""

    n_fft: int = 2048
    hop: int = 512
    width: int = 384
    latent_channels: int = 64
    levels: int = 3
    blocks: int = 2  # ConvNeXt blocks per level (and at the bottom)
    kernel: int = 7

    @property
    def bins(self) -> int:
        return self.n_fft // 2  # the Nyquist bin is dropped

    @property
    def latent_hop(self) -> int:
        return self.hop * 2 ** self.levels

    def check(self) -> None:
        if self.n_fft % self.hop or self.width % 4 or min(self.levels, self.blocks, self.latent_channels) < 1:
            raise ValueError(f"invalid codec config {self}")


CODEC_PRESETS = {
    "tiny": CodecConfig(width=32, latent_channels=8, blocks=1),
    "small": CodecConfig(width=256),
    "base": CodecConfig(width=384),
}
assert all(c.latent_hop == 4096 for c in CODEC_PRESETS.values())  # training.codec_config.LATENT_HOP


class ConvNeXt1d(nn.Module):
    """Depth-wise conv, LayerNorm over channels, pointwise MLP (x4), layer-scaled residual."""

    def __init__(self, width: int, kernel: int):
        super().__init__()
        self.dw = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)
        self.scale = nn.Parameter(torch.full((width,), 0.1))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, W, T) -> (B, W, T)."""
        h = self.dw(x).transpose(1, 2)
        h = self.down(F.gelu(self.up(self.norm(h))))
        return x + (self.scale * h).transpose(1, 2)


class Spectrogram(nn.Module):
    """Stereo audio (B, 2, N), N a multiple of hop -> magnitude (B, 2, bins, N/hop), float32.

    Frame j is centred on sample hop*j (zero padding outside), as `models.stft`."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        b, c, n = audio.shape
        spec = torch.stft(audio.reshape(b * c, n).float(), self.n_fft, self.hop, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        return spec[:, :-1, : n // self.hop].abs().reshape(b, c, self.n_fft // 2, n // self.hop)


class SpectralCodec(nn.Module):
    """Encoder and decoder of log-magnitude STFT frames (see the module docstring)."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        config.check()
        self.config = config
        w, k, bins = config.width, config.kernel, config.bins
        self.spectrogram = Spectrogram(config.n_fft, config.hop)
        self.enc_in = nn.Conv1d(2 * bins, w, 1)
        self.enc = nn.ModuleList()
        for _ in range(config.levels):
            self.enc.extend([*(ConvNeXt1d(w, k) for _ in range(config.blocks)), nn.Conv1d(w, w, 4, 2, 1)])
        self.enc.extend(ConvNeXt1d(w, k) for _ in range(config.blocks))
        self.enc_out = nn.Conv1d(w, config.latent_channels, 1)
        self.dec_in = nn.Conv1d(config.latent_channels, w, 3, padding=1)
        self.dec = nn.ModuleList(ConvNeXt1d(w, k) for _ in range(config.blocks))
        for _ in range(config.levels):
            self.dec.extend([nn.ConvTranspose1d(w, w, 4, 2, 1), *(ConvNeXt1d(w, k) for _ in range(config.blocks))])
        self.dec_norm = nn.LayerNorm(w)
        self.dec_out = nn.Conv1d(w, 2 * bins, 1)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.dec_out.bias, float(torch.log(torch.tensor(1e-3))))  # quiet, not silent

    @staticmethod
    def log_magnitude(mag: Tensor) -> Tensor:
        """(B, 2, F, T) magnitudes -> (B, 2F, T) log magnitudes (the codec's features)."""
        b, c, f, t = mag.shape
        return torch.log(mag.clamp_min(LOG_FLOOR)).reshape(b, c * f, t)

    def encode_magnitude(self, mag: Tensor) -> Tensor:
        """Magnitudes (B, 2, F, T), T a multiple of 2**levels -> latents (B, C, T / 2**levels) in (-1, 1)."""
        h = self.enc_in(self.log_magnitude(mag))
        for layer in self.enc:
            h = layer(h)
        return torch.tanh(self.enc_out(h))

    def encode(self, audio: Tensor) -> Tensor:
        """Audio (B, 2, N), N a multiple of the latent hop -> latents (B, C, N / latent_hop)."""
        if audio.shape[-1] % self.config.latent_hop:
            raise ValueError(f"audio length must be a multiple of {self.config.latent_hop} samples")
        return self.encode_magnitude(self.spectrogram(audio))

    def decode_log_magnitude(self, z: Tensor) -> Tensor:
        """Latents (B, C, L) -> predicted log magnitudes (B, 2, F, L * 2**levels)."""
        h = self.dec_in(z)
        for layer in self.dec:
            h = layer(h)
        h = self.dec_out(self.dec_norm(h.transpose(1, 2)).transpose(1, 2))
        return h.reshape(h.shape[0], 2, self.config.bins, h.shape[-1]).float()

    def forward(self, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(target magnitudes (B, 2, F, T), predicted log magnitudes (B, 2, F, T), latents)."""
        mag = self.spectrogram(audio)
        z = self.encode_magnitude(mag)
        return mag, self.decode_log_magnitude(z), z

    def describe(self) -> dict:
        return {"kind": "spectral_codec", "config": asdict(self.config),
                "parameters": sum(p.numel() for p in self.parameters())}


def codec_loss(mag: Tensor, log_pred: Tensor, sc_weight: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """L1 on log magnitude + sc_weight x spectral convergence on linear magnitude (per item,
    then averaged); both (B, 2, F, T) in float32. Returns (loss, {term: value})."""
    log_target = torch.log(mag.clamp_min(LOG_FLOOR))
    l1 = (log_pred - log_target).abs().mean()
    pred = torch.exp(log_pred.clamp(max=5.0))
    dims = tuple(range(1, mag.ndim))
    sc = (torch.linalg.vector_norm(pred - mag, dim=dims) /
          torch.linalg.vector_norm(mag, dim=dims).clamp_min(1e-3)).mean()
    return l1 + sc_weight * sc, {"log_l1": float(l1.detach()), "sc": float(sc.detach())}


def griffin_lim(mag: Tensor, n_fft: int = 2048, hop: int = 512, iterations: int = 32,
                momentum: float = 0.99, seed: int = 0) -> Tensor:
    """Audio (B, 2, T*hop) from magnitudes (B, 2, F, T) by fast Griffin-Lim (Perraudin et
    al. 2013), frames centred as `Spectrogram` (the Nyquist bin restored as 0)."""
    b, c, f, t = mag.shape
    n = t * hop
    window = torch.hann_window(n_fft, device=mag.device)
    full = F.pad(mag.reshape(b * c, f, t), (0, 1, 0, 1))  # restore the Nyquist bin and one frame
    gen = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(full.shape, generator=gen))
    previous = torch.zeros_like(angles)

    def istft(spec):
        return torch.istft(spec, n_fft, hop, window=window, center=True, length=n)

    for _ in range(iterations):
        audio = istft(full * angles)
        rebuilt = torch.stft(audio, n_fft, hop, window=window, center=True, pad_mode="constant",
                             return_complex=True)[..., : t + 1]
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp_min(1e-8)
    return istft(full * angles).reshape(b, c, n)
