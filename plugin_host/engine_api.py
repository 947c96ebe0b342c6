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


@dataclass(frozen=True)
class Controls:
    """Diff-A-Riff's controls beyond the settings: variations, inpainting, loops, CLAP mix.

    take: (2, N) previous take to vary or inpaint; strength: 1 = fresh, 0 = the take;
    keep: list of (start, end) seconds of the take kept exactly; loop: seamless loop;
    clap_mix: with both a prompt and a style reference, 0 = all prompt, 1 = all style;
    clap_embedding: (512,) a CLAP condition given directly (evaluation: raw text, bridge
    samples, CLAP_A*), used instead of the prompt and style reference.
    """

    take: np.ndarray | None = None
    strength: float = 1.0
    keep: tuple[tuple[float, float], ...] = ()
    loop: bool = False
    clap_mix: float = 0.5
    clap_embedding: np.ndarray | None = None


class Engine(Protocol):
    sample_rate: int  # Hz of the audio the engine takes and returns
    bundle_id: str  # identifies the model bundle (hash), recorded with every take
    max_steps: int

    def generate(self, context: np.ndarray | None, seconds: float, settings: GenerationSettings,
                 progress: Progress, controls: Controls = Controls()) -> np.ndarray:
        """A stem of `seconds` fitting `context` (or None: unconditional on context); the
        host passes `controls` only for variations, inpainting, loops or a CLAP mix."""
        ...
