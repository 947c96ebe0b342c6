"""The band codec: latents that are the notes' own spectrum, on a log-frequency axis.

Learned codecs trained on this project's CPU budget (the consistency autoencoder, the spectral
codec of models.spectral_codec) learned envelopes and onsets but no pitch: their
reconstructions kept note-F1 0.00-0.10 against basic-pitch transcriptions of the input
(docs/codec.md). This codec needs no training. It keeps what a transcriber hears, and keeps
it where a DiT can model it: every latent frame is a log-magnitude spectrum in quarter-tone
bands, pooled over `pool` STFT frames.

    audio (B, 2, N), 48 kHz, STFT 2048 / hop 512 magnitudes
      -> mid (L + R) / 2 in quarter-tone bands, 32.7 Hz - 20 kHz (log, max over `pool` frames)
      -> each channel's level against the mid in 3 bands per octave (the stereo image)
      -> each channel's frame energy at hop 512 against the loudest of its `pool` frames
         (onsets inside a latent frame)
      -> latents (B, D, N / (512 pool)): the three parts stacked, affinely scaled
    latents -> band magnitudes interpolated back onto the STFT bins (linearly in log
      frequency and log magnitude) -> per channel, per hop -> phase from the spectral peaks
      (numerics.phase) -> inverse STFT -> audio

Shapes: `LatentLayout` gives the channel ranges of the three parts; D = mid_bands + 2 x
balance_bands + 2 x pool.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sideman.numerics.phase import audio_from_magnitude
from sideman.numerics.spectral import istft, stft

LOG_FLOOR = math.log(1e-5)  # about -100 dBFS per bin: silence
MAX_LEVEL_STEP = 2.0        # nepers (17 dB): the most one level-matching pass changes a band
ENVELOPE_FLOOR = -8.0       # a sub-frame 8 nepers (70 dB) below its frame's loudest reads as silent


@dataclass(frozen=True)
class BandCodecConfig:
    """Signal settings of the band codec (what a bundle's manifest records)."""

    pool: int = 4                  # STFT frames per latent frame: latent hop = hop * pool
    bands_per_octave: int = 24     # the mid spectrum's resolution (24: quarter tones)
    balance_per_octave: int = 3    # the stereo image's resolution
    f_min: float = 32.7            # C1
    f_max: float = 20_000.0
    n_fft: int = 2048
    hop: int = 512
    centre: float = -1.5           # mid latent = (log magnitude - centre) / scale
    scale: float = 3.5             # (demo corpus, held-out clips: mean 0.05, std 1.0)
    balance_scale: float = 0.3     # balance latent = log level ratio / balance_scale
    envelope_scale: float = 2.0    # envelope latent = 1 + log energy ratio / envelope_scale
    level_passes: int = 1          # decode: passes matching the audio's band levels to the latents' (0: none)
    sample_rate: int = 48_000

    def __post_init__(self):
        if min(self.pool, self.bands_per_octave, self.balance_per_octave) < 1 or self.n_fft % self.hop or \
                self.level_passes < 0:
            raise ValueError(f"invalid band codec config {self}")
        if not 0 < self.f_min < self.f_max <= self.sample_rate / 2 or min(self.scale, self.balance_scale,
                                                                           self.envelope_scale) <= 0:
            raise ValueError(f"invalid band codec frequencies or scale in {self}")

    @property
    def latent_hop(self) -> int:
        return self.hop * self.pool

    @property
    def latent_dim(self) -> int:
        """Channels: mid bands + 2 x balance bands + 2 x pool (see LatentLayout)."""
        return band_count(self.bands_per_octave, self.f_min, self.f_max) + \
            2 * band_count(self.balance_per_octave, self.f_min, self.f_max) + 2 * self.pool

    def padded_length(self, samples: int) -> int:
        return max(1, math.ceil(samples / self.latent_hop)) * self.latent_hop

    def latent_frames(self, samples: int) -> int:
        return self.padded_length(samples) // self.latent_hop


def band_count(per_octave: int, f_min: float, f_max: float) -> int:
    """Bands at 1/per_octave-octave steps from f_min up to f_max."""
    return int(math.floor(per_octave * math.log2(f_max / f_min))) + 1


def triangles(centres: np.ndarray, per_octave: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """(bands, n_fft/2+1) triangles at `centres` reaching the next band (at least one bin
    either side), each summing to 1."""
    bin_hz = sample_rate / n_fft
    freqs = np.arange(n_fft // 2 + 1) * bin_hz
    half_width = np.maximum(centres * (2 ** (1 / per_octave) - 1), bin_hz)
    tri = np.maximum(0.0, 1.0 - np.abs(freqs[None] - centres[:, None]) / half_width[:, None])
    return (tri / tri.sum(1, keepdims=True)).astype(np.float32)


class Bands:
    """Triangular bands at equal steps of log frequency over the STFT bins, and the way back.

    `analysis` (bands, bins) sums to 1 per band (a band narrower than the bin spacing
    interpolates between the two nearest bins); `to_bins` reads each bin's log magnitude
    off the bands by linear interpolation in log frequency (below f_min: the first band)."""

    def __init__(self, per_octave: int, f_min: float, f_max: float, n_fft: int, sample_rate: int):
        count = band_count(per_octave, f_min, f_max)
        self.centres = f_min * 2.0 ** (np.arange(count) / per_octave)
        self.analysis = triangles(self.centres, per_octave, n_fft, sample_rate)
        freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
        position = np.interp(np.log2(np.maximum(freqs, 1e-3)), np.log2(self.centres), np.arange(count))
        self._lo = np.floor(position).astype(int)
        self._hi = np.minimum(self._lo + 1, count - 1)
        self._frac = (position - self._lo)[:, None].astype(np.float32)

    def __len__(self) -> int:
        return len(self.centres)

    def log_bands(self, magnitude: np.ndarray) -> np.ndarray:
        """Magnitudes (..., bins, T) -> log band magnitudes (..., bands, T), floored. (Mean
        magnitude, not power: on held-out mixes it kept note-F1 0.40 against 0.34; a partial
        in a band wider than its peak comes back quieter: -6 dB for a 1.8-kHz tone and its harmonics.)"""
        return np.log(np.maximum(np.matmul(self.analysis, magnitude), math.exp(LOG_FLOOR)))

    def to_bins(self, log_bands: np.ndarray) -> np.ndarray:
        """Log band magnitudes (..., bands, T) -> log magnitudes (..., bins, T)."""
        return log_bands[..., self._lo, :] * (1 - self._frac) + log_bands[..., self._hi, :] * self._frac


@dataclass(frozen=True)
class LatentLayout:
    """Channel ranges of the latent parts."""

    mid: slice
    balance: slice   # left then right, balance_bands each
    envelope: slice  # left then right, pool each
    channels: int


class BandCodec:
    """encode (B, 2, N) -> latents (B, D, ceil(N / latent_hop)); decode back to audio. The
    same interface as numerics.autoencoder.Codec (decode's steps, mode and rng are accepted
    and unused: decoding is deterministic)."""

    def __init__(self, cfg: BandCodecConfig = BandCodecConfig()):
        self.cfg = cfg
        self.mid_bands = Bands(cfg.bands_per_octave, cfg.f_min, cfg.f_max, cfg.n_fft, cfg.sample_rate)
        self.balance_bands = Bands(cfg.balance_per_octave, cfg.f_min, cfg.f_max, cfg.n_fft, cfg.sample_rate)

    @cached_property
    def layout(self) -> LatentLayout:
        m, b, p = len(self.mid_bands), len(self.balance_bands), self.cfg.pool
        return LatentLayout(slice(0, m), slice(m, m + 2 * b), slice(m + 2 * b, m + 2 * b + 2 * p), m + 2 * b + 2 * p)

    @property
    def latent_dim(self) -> int:
        return self.layout.channels

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Audio (B, 2, N) -> latents (B, D, L), L = ceil(N / latent_hop), float32 (silence
        pads the end to whole latent frames)."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 3 or audio.shape[1] != 2:
            raise ValueError(f"audio must be (batch, 2, samples), not {audio.shape}")
        cfg, n = self.cfg, audio.shape[-1]
        frames = self.cfg.latent_frames(n) * cfg.pool
        padded = np.zeros(audio.shape[:2] + (self.cfg.padded_length(n),), np.float32)
        padded[..., :n] = audio
        return np.stack([self._encode_one(item, frames) for item in padded]).astype(np.float32)

    def _encode_one(self, audio: np.ndarray, frames: int) -> np.ndarray:
        cfg = self.cfg
        mag = np.abs(stft(audio, cfg.n_fft, cfg.hop, dtype=np.float32))[..., :frames]  # (2, bins, frames)
        pooled = lambda x: x.reshape(*x.shape[:-1], -1, cfg.pool).max(-1)     # noqa: E731  (..., T) -> (..., T / pool)
        mid = (mag[0] + mag[1]) / 2
        mid_bands = self.mid_bands.log_bands(mid)
        mid_log = self.balance_bands.log_bands(mid)
        balance = [pooled(self.balance_bands.log_bands(mag[c]) - mid_log) for c in (0, 1)]
        energy = np.log(np.maximum(mag.sum(1), math.exp(LOG_FLOOR)))          # (2, frames)
        energy = energy.reshape(2, -1, cfg.pool)
        envelope = np.maximum(energy - energy.max(-1, keepdims=True), ENVELOPE_FLOOR)  # (2, L, pool), <= 0
        envelope = envelope.transpose(0, 2, 1).reshape(2 * cfg.pool, -1)
        return np.concatenate([(pooled(mid_bands) - cfg.centre) / cfg.scale,
                               np.concatenate(balance) / cfg.balance_scale,
                               envelope / cfg.envelope_scale + 1.0])

    def decode_magnitude(self, latents: np.ndarray) -> np.ndarray:
        """Latents (B, D, L) -> STFT magnitudes (B, 2, bins, L * pool + 1), float32."""
        cfg, lay = self.cfg, self.layout
        z = np.asarray(latents, np.float32)
        if z.ndim != 3 or z.shape[1] != lay.channels:
            raise ValueError(f"latents must be (batch, {lay.channels}, frames), not {z.shape}")
        b, _, frames = z.shape
        up = lambda x: np.repeat(x, cfg.pool, axis=-1)                       # noqa: E731  (..., L) -> (..., L * pool)
        mid = self.mid_bands.to_bins(up(z[:, lay.mid] * cfg.scale + cfg.centre))       # (B, bins, T)
        balance = z[:, lay.balance].reshape(b, 2, -1, frames) * cfg.balance_scale
        envelope = ((z[:, lay.envelope] - 1.0) * cfg.envelope_scale).reshape(b, 2, cfg.pool, frames)
        envelope = np.minimum(envelope, 0.0).transpose(0, 1, 3, 2).reshape(b, 2, 1, -1)   # (B, 2, 1, T)
        log_mag = mid[:, None] + self.balance_bands.to_bins(up(balance)) + envelope
        log_mag = np.concatenate([log_mag, log_mag[..., -1:]], axis=-1)       # the closing frame
        return np.exp(np.maximum(log_mag, LOG_FLOOR))

    def decode(self, latents: np.ndarray, length: int | None = None, **_unused) -> np.ndarray:
        """Latents (B, D, L) -> audio (B, 2, length or L * latent_hop) float32."""
        cfg = self.cfg
        n = np.shape(latents)[-1] * cfg.latent_hop
        out = []
        for magnitude in self.decode_magnitude(latents):
            audio = audio_from_magnitude(magnitude, cfg.n_fft, cfg.hop, n, np.float32)
            for _ in range(cfg.level_passes):
                audio = self._match_levels(audio, magnitude)
            out.append(audio)
        return np.stack(out)[..., :n if length is None else length].astype(np.float32)

    def _match_levels(self, audio: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
        """Audio (2, N) re-analysed, each quarter-tone band of each frame scaled (at most
        MAX_LEVEL_STEP nepers) to the level `magnitude` (2, bins, T) asks for, resynthesised.
        Phase from peaks gives every bin of a region one frequency; where the magnitudes are
        not those of any signal (a band's partial spread over its bins, several partials in
        one region) the inverse STFT loses energy: 2-7 dB in mel bands on held-out clips,
        which one pass restores (log-mel L1 0.36 -> 0.17 on pitched stems, 0.56 -> 0.26 on
        mixes; note-F1 unchanged)."""
        cfg = self.cfg
        spec = stft(audio, cfg.n_fft, cfg.hop, dtype=np.float32)[..., :magnitude.shape[-1]]
        gain = self.mid_bands.log_bands(magnitude) - self.mid_bands.log_bands(np.abs(spec))
        spec = spec * np.exp(self.mid_bands.to_bins(np.clip(gain, -MAX_LEVEL_STEP, MAX_LEVEL_STEP)))
        return istft(spec, cfg.n_fft, cfg.hop, audio.shape[-1], np.float32)
