"""Wall time of one generation through an engine: the real-time factor a user sees."""
from __future__ import annotations

import time

import numpy as np


def time_generation(engine, seconds: float = 10.0, steps: int = 5, prompt: str = "bass line",
                    repeats: int = 3, seed: int = 0) -> dict:
    """Best-of-``repeats`` wall seconds to generate ``seconds`` of stereo stem from a
    ``seconds`` context and a text prompt (context encoding, prompt through the bridge,
    ``steps`` C-DiT steps with guidance, two-step decoding), after one untimed warm-up.
    Returns ``{"seconds", "steps", "wall_s", "rtf"}`` (rtf = wall / seconds)."""
    from sideman.plugin_host.engine_api import GenerationSettings

    rng = np.random.default_rng(seed)
    context = (0.1 * rng.standard_normal((2, int(round(seconds * engine.sample_rate))))).astype(np.float32)
    settings = GenerationSettings(prompt=prompt, seed=seed, steps=steps)
    engine.generate(context, seconds, settings)
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.generate(context, seconds, settings)
        walls.append(time.perf_counter() - start)
    wall = min(walls)
    return {"seconds": seconds, "steps": steps, "wall_s": round(wall, 4), "rtf": round(wall / seconds, 4)}
