"""The machinery of `sideman eval` around the models: seeds, the resumable workspace of
cached units, the metric embedders, loaded engines, CLAP conditions and the white-noise
bound (see evaluation.evaluate)."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from sideman.models.clap import ClapEmbedder
from sideman.evaluation.eval_config import NOISE_LEVEL, SAMPLE_RATE, Setting
from sideman.data.files import atomic_write
from sideman.numerics.loudness import match_loudness


# ------------------------------------------------------------------ seeds, files


def derive_seed(*parts: int) -> int:
    """A 32-bit seed from non-negative integers, the same on every run and platform."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def rng_for(*parts: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


class Workspace:
    """The cache of one evaluation (OUT/cache): .npz and .json files written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def _write(self, rel: str, data: bytes) -> None:
        atomic_write(self.path(rel), data)

    def save_arrays(self, rel: str, **arrays) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self._write(rel, buf.getvalue())

    def load_arrays(self, rel: str) -> dict[str, np.ndarray] | None:
        """The arrays of a .npz, or None when missing or unreadable."""
        try:
            with np.load(self.path(rel), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError):
            return None

    def save_json(self, rel: str, obj) -> None:
        self._write(rel, json.dumps(obj, indent=1, sort_keys=True).encode())

    def load_json(self, rel: str):
        try:
            return json.loads(self.path(rel).read_text())
        except (OSError, ValueError):
            return None


# ----------------------------------------------------------------- embedders


class EngineClapEmbedder(ClapEmbedder):
    """`ClapEmbedder` over a bundle's own house-CLAP towers (OnnxEngine.embed_audio/_text).

    The base class does the downmix and the centre crop / repeat pad to the towers' clip
    length (manifest 'clap.clip_seconds'), so results equal `HouseClapEmbedder` on the
    weights the bundle was exported from. model_id names the towers' file hashes.
    """

    def __init__(self, engine, batch_size: int = 16):
        bundle = engine.bundle
        if not (bundle.has("clap_audio") and bundle.has("clap_text")):
            raise ValueError(f"bundle {bundle.root} has no CLAP towers to compute metrics with: "
                             "pass --embedder house --clap-model FILE or --embedder laion --clap-model FILE")
        super().__init__(clip_seconds=float(bundle.manifest["clap"]["clip_seconds"]), batch_size=batch_size)
        self.engine = engine
        files = bundle.manifest["files"]
        digest = hashlib.sha256((files["clap_audio"]["sha256"] + files["clap_text"]["sha256"]).encode())
        self._id = f"bundle-clap:{digest.hexdigest()[:16]}"

    @property
    def model_id(self) -> str:
        return self._id

    def _audio_batch(self, x: np.ndarray) -> np.ndarray:
        return self.engine.embed_audio(list(x))

    def _text_batch(self, texts: list[str]) -> np.ndarray:
        return self.engine.embed_text(texts)


def metric_embedder(kind: str, clap_model: Path | None, engine) -> ClapEmbedder:
    """The metric embedder: 'house' with a checkpoint, 'house' without one (the bundle's
    towers, via `engine`), or 'laion' with its checkpoint."""
    from sideman.models.clap import load_embedder

    if kind == "house":
        return load_embedder("house", path=clap_model) if clap_model else EngineClapEmbedder(engine)
    if kind == "laion":
        if not clap_model:
            raise ValueError("--embedder laion needs --clap-model (the LAION music checkpoint .pt)")
        return load_embedder("laion", checkpoint=clap_model)
    raise ValueError(f"unknown embedder {kind!r}: use 'house' or 'laion'")


# ------------------------------------------------------------ generation


def clap_condition(engine, setting: Setting, pair, seed: int,
                   embed_text: Callable[[str], np.ndarray] | None = None) -> np.ndarray | None:
    """The (512,) CLAP condition of `setting` for a pair, in the bundle's space, or None.

    embed_text(caption) -> (512,) defaults to the engine's text tower."""
    if setting.clap is None:
        return None
    if setting.clap == "audio":
        return engine.embed_audio([pair.clap_audio])[0]
    if setting.clap == "bridge_uncond":
        return engine.bridge(None, 1, seed)[0]
    text = embed_text(pair.caption) if embed_text else engine.embed_text([pair.caption])[0]
    return text if setting.clap == "text" else engine.bridge(text, 1, seed)[0]


class Engines:
    """One OnnxEngine per bundle folder, warmed up (untimed) before its first timed use,
    and a memo of caption embeddings per bundle (captions repeat across pairs)."""

    def __init__(self, threads: int = 0):
        self.threads = threads
        self._engines: dict[Path, object] = {}
        self._warm: set[tuple[Path, int]] = set()
        self._texts: dict[tuple[Path, str], np.ndarray] = {}

    def text_embedding(self, bundle: Path, caption: str) -> np.ndarray:
        """The bundle's raw text embedding (512,) of `caption`, computed once."""
        key = (Path(bundle).resolve(), caption)
        if key not in self._texts:
            self._texts[key] = self.get(bundle).embed_text([caption])[0]
        return self._texts[key]

    def get(self, bundle: Path):
        from sideman.plugin_host.engine import OnnxEngine

        key = Path(bundle).resolve()
        if key not in self._engines:
            self._engines[key] = OnnxEngine(key, intra_threads=self.threads)
        return self._engines[key]

    def warm(self, bundle: Path, steps: int, seconds: float):
        """The engine, after one generation at `steps` (and a text embedding if it has a
        text tower), so that loading costs stay out of the timings."""
        from sideman.plugin_host.engine_api import GenerationSettings

        engine = self.get(bundle)
        key = (Path(bundle).resolve(), steps)
        if key not in self._warm:
            engine.generate(None, seconds, GenerationSettings(steps=steps))
            if engine.bundle.has("clap_text"):
                engine.embed_text(["warm up"])
            self._warm.add(key)
        return engine


def white_noise(like: np.ndarray, seed: int) -> np.ndarray:
    """Gaussian white noise shaped like `like` (C, N) at its integrated loudness, float32."""
    noise = NOISE_LEVEL * rng_for(seed).standard_normal(like.shape)
    return match_loudness(noise, like, SAMPLE_RATE).astype(np.float32)

