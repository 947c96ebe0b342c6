"""The autoencoder's signal representation: a compressed complex STFT of stereo audio.

Frames: periodic Hann window of ``n_fft`` = 2048 samples, hop 512, centred on sample
``512 j`` (zero padding outside the signal). For a signal of ``N`` samples (``N`` a
multiple of the hop) we keep the first ``N / hop`` frames, so one 4096-sample latent
block owns exactly 8 frames, and drop the Nyquist bin (1025 -> 1024 bins). Frame ``j``
covers samples ``[512 j - 1024, 512 j + 1024)``: the frames of a block reach at most
``n_fft/2 - hop`` = 512 samples past its end (the model's look-ahead).

Amplitude compression (Music2Latent): ``Y = beta |X|^alpha exp(i angle X)`` with
``alpha`` = 0.65, ``beta`` = 0.34, so loud and quiet bins get comparable scale. The
representation stacks real and imaginary parts of both channels as 4 input channels in
the order ``(left.re, left.im, right.re, right.im)``.

The inverse (decompress, iSTFT over the same frames) returns exactly ``N`` samples; it
is exact up to float error and the dropped Nyquist bin (about -37 dB for white noise,
nothing for band-limited music).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SpectralTransform", "compress", "decompress"]


def compress(x: Tensor, alpha: float, beta: float) -> Tensor:
    """Complex amplitude compression ``beta |x|^alpha e^{i angle x}`` (phase kept)."""
    mag = x.abs()
    return x * (beta * mag.clamp_min(1e-12).pow(alpha - 1.0))


def decompress(y: Tensor, alpha: float, beta: float) -> Tensor:
    """Inverse of :func:`compress`: ``(|y| / beta)^(1/alpha) e^{i angle y}``."""
    mag = y.abs()
    return y * (beta ** (-1.0 / alpha) * mag.pow(1.0 / alpha - 1.0))


class SpectralTransform(nn.Module):
    """Stereo audio ``(B, 2, N)`` <-> compressed spectrogram ``(B, 4, n_fft/2, N/hop)``.

    ``N`` must be a multiple of ``hop``; the autoencoder pads to whole chunks first.
    Works in float32 whatever the input dtype (and outside autocast).
    """

    def __init__(self, n_fft: int = 2048, hop: int = 512, alpha: float = 0.65,
                 beta: float = 0.34) -> None:
        super().__init__()
        self.n_fft, self.hop, self.alpha, self.beta = n_fft, hop, alpha, beta
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def bins(self) -> int:
        return self.n_fft // 2

    def forward(self, audio: Tensor) -> Tensor:
        """``audio (B, 2, N)`` -> ``spec (B, 4, bins, N/hop)`` float32."""
        half = self.n_fft // 2
        return self.frames(nn.functional.pad(audio, (half, half)))

    def frames(self, context: Tensor) -> Tensor:
        """Frames of a stretch of audio given with its context: ``context (B, 2, N + n_fft)``
        holds ``n_fft/2`` samples before and after the ``N`` samples (zeros outside the
        signal) -> ``spec (B, 4, bins, N/hop)``, the frames centred on those ``N`` samples.
        Lets a long signal be analysed piece by piece with the same result."""
        b, c, n = context.shape
        n -= self.n_fft
        if n <= 0 or n % self.hop:
            raise ValueError(f"length {n} is not a positive multiple of the hop {self.hop}")
        with torch.autocast(context.device.type, enabled=False):
            x = torch.stft(context.reshape(b * c, -1).float(), self.n_fft, self.hop,
                           window=self.window, center=False, return_complex=True)
            x = compress(x[:, :self.bins, :n // self.hop], self.alpha, self.beta)
            x = torch.view_as_real(x)                      # (B*2, bins, frames, 2)
        return x.permute(0, 3, 1, 2).reshape(b, 2 * c, self.bins, n // self.hop)

    def inverse(self, spec: Tensor, length: int | None = None) -> Tensor:
        """``spec (B, 4, bins, T)`` -> ``audio (B, 2, length)`` (default ``T * hop``)."""
        b, _, bins, frames = spec.shape
        n = frames * self.hop
        with torch.autocast(spec.device.type, enabled=False):
            x = spec.float().reshape(b * 2, 2, bins, frames).permute(0, 2, 3, 1)
            x = decompress(torch.view_as_complex(x.contiguous()), self.alpha, self.beta)
            x = torch.cat([x, x.new_zeros(b * 2, 1, frames)], dim=1)   # Nyquist bin
            audio = torch.istft(x, self.n_fft, self.hop, window=self.window, center=True,
                                length=n)
        audio = audio.reshape(b, 2, n)
        if length is None:
            return audio
        if length > n:
            raise ValueError(f"asked for {length} samples from {n} samples of frames")
        return audio[..., :length]
