"""Four deterministic test clips for the musicnn parity check, synthesised in numpy only.

`scripts/musicnn_reference.py` runs musicnn's original TensorFlow code on these clips (in a
throwaway venv where `sideman` is not installed, so this module depends on numpy alone) and
`tests/test_musicnn.py` regenerates them to compare our torch port with the stored outputs.
Levels are those of mixed stems (RMS 0.05 to 0.1); every clip lasts over 3 s, since
musicnn's own extractor needs at least one whole 3-s patch.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 48_000
SEED = 2019  # musicnn's release year
NAMES = ("chord", "noise", "bass", "mix")


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE


def _harmonic(freq: float, t: np.ndarray, partials: int, rolloff: float) -> np.ndarray:
    """A sum of `partials` harmonics of `freq` with amplitudes k**-rolloff (below Nyquist)."""
    out = np.zeros_like(t)
    for k in range(1, partials + 1):
        if k * freq < SAMPLE_RATE / 2:
            out += np.sin(2 * np.pi * k * freq * t) / k ** rolloff
    return out


def _midi(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def chord(rng: np.random.Generator) -> np.ndarray:
    """(2, 6 s): four sustained 4-note chords (Am7 F C G), panned apart, slow attack."""
    t = _t(1.5)
    env = np.minimum(t / 0.05, 1.0) * np.exp(-t / 2.0)
    bars = []
    for tones in ([57, 60, 64, 67], [53, 57, 60, 65], [48, 55, 60, 64], [55, 59, 62, 67]):
        left = sum(_harmonic(_midi(p), t, 8, 1.2) * (0.6 + 0.1 * i) for i, p in enumerate(tones))
        right = sum(_harmonic(_midi(p), t, 8, 1.2) * (0.9 - 0.1 * i) for i, p in enumerate(tones))
        bars.append(np.stack([left, right]) * env * 0.06)
    return np.concatenate(bars, axis=1).astype(np.float32)


def noise(rng: np.random.Generator) -> np.ndarray:
    """(5 s,): eighth-note noise bursts at 120 bpm with random accents and decays (hi-hats
    and snares), over a quiet noise floor."""
    n = int(5 * SAMPLE_RATE)
    out = rng.standard_normal(n) * 0.002
    step = SAMPLE_RATE // 4  # an eighth note at 120 bpm
    for start in range(0, n, step):
        length = min(step, n - start)
        tau = rng.uniform(0.01, 0.08) if (start // step) % 4 != 2 else 0.15  # a snare on 2 and 4
        gain = rng.uniform(0.05, 0.25)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (tau * SAMPLE_RATE))
        out[start:start + length] += gain * burst
    return out.astype(np.float32)


def bass(rng: np.random.Generator) -> np.ndarray:
    """(7 s,): a quarter-note bass line at 110 bpm, saw-like tones with plucked envelopes."""
    beat = 60.0 / 110
    t_note = _t(beat)
    env = np.minimum(t_note / 0.005, 1.0) * np.exp(-t_note / 0.25)
    pitches = rng.choice([33, 36, 38, 40, 43, 45], size=int(np.ceil(7 / beat)))
    line = np.concatenate([_harmonic(_midi(p), t_note, 12, 1.0) * env for p in pitches])
    return (0.12 * line[:int(7 * SAMPLE_RATE)]).astype(np.float32)


def mix(rng: np.random.Generator) -> np.ndarray:
    """(2, 6.5 s): kick-drum sweeps every beat at 100 bpm under a held major chord, plus noise."""
    t = _t(6.5)
    out = 0.05 * (_harmonic(_midi(60), t, 6, 1.5) + _harmonic(_midi(64), t, 6, 1.5)
                  + _harmonic(_midi(67), t, 6, 1.5))
    beat = int(SAMPLE_RATE * 60 / 100)
    tk = _t(0.3)
    kick = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-tk / 0.03)) * 0.03)) * np.exp(-tk / 0.12)
    for start in range(0, len(t) - len(tk), beat):
        out[start:start + len(tk)] += 0.3 * kick
    hiss = rng.standard_normal((2, len(t))) * 0.01
    return (out[None, :] + hiss).astype(np.float32)


def reference_clips(seed: int = SEED) -> list[np.ndarray]:
    """The four clips (`NAMES`), float32 at 48 kHz: (2, S) for chord and mix, (S,) otherwise.
    One generator, drawn from in this order, so each clip depends on the seed alone."""
    rng = np.random.default_rng(seed)
    return [chord(rng), noise(rng), bass(rng), mix(rng)]
