"""What the host needs from a generation engine (the onnxruntime engine implements it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

Progress = Callable[[int, int], None]  # (step done, total steps); may raise to cancel


@dataclass(frozen=True)
class GenerationSettings:
    """Per-request controls. Audio is float32 (2, samples) at the engine's sample rate."""

    prompt: str = ""
    style_audio: np.ndarray | None = None
    seed: int = 0
    steps: int = 5
    guidance_context: float = 1.25
    guidance_clap: float = 1.25


class Engine(Protocol):
    sample_rate: int  # Hz of the audio the engine takes and returns
    bundle_id: str  # identifies the model bundle (hash), recorded with every take
    max_steps: int

    def generate(self, context: np.ndarray | None, seconds: float, settings: GenerationSettings,
                 progress: Progress) -> np.ndarray:
        """A stem of `seconds` fitting `context` (or None: unconditional on context)."""
        ...
