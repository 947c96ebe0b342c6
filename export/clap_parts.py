"""The house CLAP's towers for ONNX; the engine computes log-mels (numerics.spectral) and
MiniLM sentence embeddings (numerics.minilm) in numpy around them.

    clap_audio.onnx  log_mel (B, frames, n_mels) -> embedding (B, 512), unit rows; `frames`
                     is fixed by the clip length (clips are cropped or padded to it first)
    clap_text.onnx   sentence (B, 384) MiniLM embedding -> embedding (B, 512), unit rows
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sideman.models.clap_house import HouseClap


class ClapAudioPart(nn.Module):
    def __init__(self, clap: HouseClap):
        super().__init__()
        self.audio = clap.audio

    def forward(self, log_mel: Tensor) -> Tensor:
        return F.normalize(self.audio.from_logmel(log_mel), dim=-1)


class ClapTextPart(nn.Module):
    def __init__(self, clap: HouseClap):
        super().__init__()
        self.text = clap.text

    def forward(self, sentence: Tensor) -> Tensor:
        return F.normalize(self.text(sentence), dim=-1)


def parts(clap: HouseClap) -> dict[str, tuple[nn.Module, tuple, list[str], list[str], dict]]:
    """name -> (module, example inputs, input names, output names, dynamic axes)."""
    cfg = clap.config
    frames = int(cfg.clip_seconds * 48000) // cfg.hop + 1
    g = torch.Generator().manual_seed(0)
    return {
        "clap_audio": (ClapAudioPart(clap), (torch.randn(1, frames, cfg.n_mels, generator=g),),
                       ["log_mel"], ["embedding"],
                       {"log_mel": {0: "batch"}, "embedding": {0: "batch"}}),
        "clap_text": (ClapTextPart(clap), (torch.randn(1, cfg.text_dim, generator=g),),
                      ["sentence"], ["embedding"], {"sentence": {0: "batch"}, "embedding": {0: "batch"}}),
    }
