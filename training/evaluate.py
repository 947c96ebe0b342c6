"""Table-1 evaluation of model bundles (paper section 4.4), behind `sideman eval`.

What is measured
----------------
A bundle is the unit of evaluation. For each conditioning setting (:data:`SETTINGS`) the
bundle's engine generates one stem for every *candidate* pair of the chosen split
(`PairSampler`, epoch 0, indices 0 .. n_batches * batch_size - 1): the pair's context
mix (settings with 'ctx'), and a CLAP condition:

- CLAP_A  ('clap_a'):  the audio embedding of the pair's CLAP segment (another window of
  the target stem, never overlapping it);
- CLAP_T  ('clap_t'):  the RAW text embedding of the pair's caption;
- CLAP_B  ('clap_b'):  that text embedding through the bridge (the paper's CLAP_B: what
  the plugin does with a prompt);
- CLAP_A* ('clap_a*'): an unconditional bridge sample;
- 'ctx' alone, or 'uncond' (nothing).

Conditioning embeddings always come from the bundle's own towers and bridge. The
*metrics* are computed in the space of a `ClapEmbedder` (the metric embedder): a house
CLAP checkpoint, the LAION music checkpoint, or, by default, the bundle's own house
towers through :class:`EngineClapEmbedder` (in comparison mode: the first variant's).

Per batch of candidates and then mean +- std (ddof 0) over the batches, as the paper:

- KD, FAD, Density, Coverage of the generated stems' embeddings against a reference set
  of real target stems (epoch 1 pairs of the same split; pairs whose (song, stem,
  window) equals a candidate's are skipped while at most n_ref have been skipped, so
  the sets are disjoint where the data allows);
- APA (settings with context): Y = each candidate context mixed with its generated stem;
  the real reference X and the anti-reference X' (each reference context with a target
  stem of another song) are built from the *reference pairs*, with `build_mix` (stem
  loudness-matched to the context, mix at -20 LUFS). Taking X and X' from held-out pairs,
  as the reference statistics of audio-metrics are, keeps the bounds informative: the
  real bound lands near (not exactly at) 1 and random pairing near 0;
- CS_AA, CS_TA with the paper's ground truths (`training.clap_score`): for CLAP_A and
  CLAP_T/CLAP_B the reference audio is the pair's CLAP segment and the text its caption;
  for ctx, uncond and CLAP_A* the removed target stem and its caption.

Bounds, computed the same way on the same candidate pairs:

- 'real': the real target stems as candidates (CS_AA is left out, as in the paper: it
  would compare a stem with itself);
- 'noise': white noise at each target stem's loudness (BS.1770), mixed in for APA;
- 'random': for each candidate, the target stem of a pair from another song (epoch 2
  pairs) as the "generation", for APA and the CLAP scores (its distribution metrics are
  those of a real set, listed for completeness).

Comparison
----------
Several `Variant`s (a bundle, its steps, guidance and settings) share the candidates,
references, bounds and metric embedder, and appear side by side, each setting row with
the wall time of its generations (CLAP condition + sampling + decoding, after one
untimed warm-up generation; caption embeddings are computed once per caption) per
second of generated audio.

Reproducibility and resume
--------------------------
Every random choice is seeded from (seed, purpose, item index), so equal seeds give equal
reports. Work is cached under OUT/cache, one file per unit (ground-truth batch,
reference chunk, row x batch: embeddings, generation wall time, then metrics), each
written atomically; `resume=True` skips the units on disk. A run without resume starts
from an empty cache.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from sideman.models.clap import ClapEmbedder
from sideman.training.apa import anti_reference_pairs, apa_from_distances, build_mix
from sideman.training.clap_score import clap_score, clap_scores
from sideman.training.distribution_metrics import (
    ReferenceSet, density_coverage, frechet_distance, gaussian_stats, kernel_distance, mean_over_batches)
from sideman.training.eval_report import Report, RowResult, atomic_write
from sideman.training.loudness import match_loudness

SAMPLE_RATE = 48_000
CANDIDATE_EPOCH, REFERENCE_EPOCH, RANDOM_EPOCH = 0, 1, 2
_TAG_GENERATE, _TAG_NOISE, _TAG_RANDOM, _TAG_ANTI, _TAG_KD = 1, 2, 3, 4, 5
REF_CHUNK = 250  # reference pairs per cache file
NOISE_LEVEL = 0.1  # std of the white noise before loudness matching


# ----------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """A conditioning setting: context on/off, the CLAP condition, the CS ground truth.

    clap: None, 'audio' (CLAP_A), 'text' (raw CLAP_T), 'bridge' (CLAP_B: text through
    the bridge) or 'bridge_uncond' (CLAP_A*). ground_truth: the `clap_score` setting
    whose ground truth applies.
    """

    name: str
    context: bool
    clap: str | None
    ground_truth: str


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("ctx+clap_a", True, "audio", "ctx+clap_a"),
    Setting("ctx+clap_t", True, "text", "ctx+clap_t"),
    Setting("ctx+clap_b", True, "bridge", "ctx+clap_t"),
    Setting("ctx", True, None, "ctx"),
    Setting("clap_a", False, "audio", "clap_a"),
    Setting("clap_t", False, "text", "clap_t"),
    Setting("clap_b", False, "bridge", "clap_t"),
    Setting("uncond", False, None, "uncond"),
    Setting("ctx+clap_a*", True, "bridge_uncond", "ctx+clap_a*"),
    Setting("clap_a*", False, "bridge_uncond", "clap_a*"),
)}
BOUNDS = {"real": "real", "noise": "white noise", "random": "random pairing"}
LEGEND = (
    "Inputs: ctx = the context mix; clap_a = audio CLAP of another segment of the target stem; "
    "clap_t = raw text CLAP of its caption; clap_b = that text through the bridge (CLAP_B); "
    "clap_a* = an unconditional bridge sample (CLAP_A*); uncond = nothing.",
    "Bounds: real = the real target stems; white noise at their loudness; random pairing = "
    "target stems of other songs. APA places each context + stem mix between the reference "
    "pairs' real mixes (1) and their mixes with stems of other songs (0).",
)
PARTS_FOR_CLAP = {"audio": ("clap_audio",), "text": ("clap_text",),
                  "bridge": ("clap_text", "bridge_step"), "bridge_uncond": ("bridge_step",)}


def parse_settings(text: str) -> tuple[str, ...]:
    """'ctx+clap_a,ctx' -> ('ctx+clap_a', 'ctx'); ValueError naming unknown settings."""
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in SETTINGS]
    if unknown or not names:
        raise ValueError(f"unknown settings {unknown or text!r}; choose from {', '.join(SETTINGS)}")
    return names


def missing_parts(setting: str, bundle) -> list[str]:
    """Bundle parts (e.g. 'bridge_step') that `setting` needs and `bundle` lacks."""
    clap = SETTINGS[setting].clap
    return [p for p in PARTS_FOR_CLAP.get(clap, ()) if not bundle.has(p)]


# ----------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class Protocol:
    """Batches of candidates and the reference set: n_batches x batch_size vs n_ref.

    kd_subsets / kd_subset_size: KD's random subsets (capped by the set sizes);
    k: the nearest-neighbour k of Density and Coverage.
    """

    n_batches: int
    batch_size: int
    n_ref: int
    kd_subsets: int = 100
    kd_subset_size: int = 1000
    k: int = 5

    def check(self) -> None:
        if self.n_batches < 1 or self.batch_size < 2:
            raise ValueError("need at least 1 batch of at least 2 candidates")
        if self.n_ref <= self.k:
            raise ValueError(f"need more than k={self.k} references, got {self.n_ref}")


PRESETS = {
    "paper": Protocol(5, 1000, 5000),
    "quick": Protocol(3, 200, 1000, kd_subsets=50, kd_subset_size=200),
    "tiny": Protocol(2, 6, 16, kd_subsets=10, kd_subset_size=6),
}


@dataclass(frozen=True)
class EvalConfig:
    """Everything besides the variants that decides the numbers of a report.

    seconds: window and generation length (s); clap_seconds: CLAP segment length (s,
    default = seconds); chunk: items generated/embedded per call; bounds: add the rows.
    """

    protocol: Protocol
    seconds: float = 10.0
    clap_seconds: float | None = None
    seed: int = 0
    split: str = "validation"
    layout: str = "auto"
    chunk: int = 16
    bounds: bool = True


@dataclass(frozen=True)
class Variant:
    """One model configuration to evaluate: a bundle, its sampling steps and settings.

    settings: None = the run's settings; guidance_*: None = the bundle's defaults.
    """

    name: str
    bundle: Path
    steps: int = 5
    settings: tuple[str, ...] | None = None
    guidance_context: float | None = None
    guidance_clap: float | None = None


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_variant(text: str, default_steps: int = 5) -> Variant:
    """'NAME=BUNDLE[:STEPS[:SETTING,SETTING...]]' -> Variant (the bundle path may hold ':')."""
    name, sep, rest = text.partition("=")
    if not sep or not _NAME.match(name) or not rest:
        raise ValueError(f"--compare expects NAME=BUNDLE[:STEPS[:SETTINGS]], got {text!r}")
    parts = rest.split(":")
    settings = steps = None
    if len(parts) > 1 and all(s.strip() in SETTINGS for s in parts[-1].split(",")):
        settings = parse_settings(parts.pop())
    if len(parts) > 1 and parts[-1].isdigit():
        steps = int(parts.pop())
    return Variant(name, Path(":".join(parts)).expanduser(), steps or default_steps, settings)


def load_variants(path: Path) -> list[Variant]:
    """Variants from a JSON or YAML spec: {"variants": [{"name", "bundle", "steps",
    "settings" (list or comma string), "guidance_context", "guidance_clap"}, ...]}.

    Relative bundle paths are relative to the spec file's folder."""
    import yaml

    spec = yaml.safe_load(Path(path).read_text())  # YAML is a superset of JSON
    items = spec.get("variants") if isinstance(spec, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a mapping with a non-empty 'variants' list")
    out = []
    for item in items:
        settings = item.get("settings")
        if isinstance(settings, list):
            settings = ",".join(settings)
        if not _NAME.match(str(item.get("name", ""))) or "bundle" not in item:
            raise ValueError(f"{path}: every variant needs a 'name' (letters, digits, _.-) and a 'bundle'")
        bundle = Path(path).parent / Path(item["bundle"]).expanduser()
        out.append(Variant(str(item["name"]), bundle, int(item.get("steps", 5)),
                           parse_settings(settings) if settings else None,
                           item.get("guidance_context"), item.get("guidance_clap")))
    return out


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


# ---------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One table row: a variant's setting, or a bound (variant None).

    key: its cache folder under rows/; label: its name in the table.
    """

    key: str
    label: str
    setting: str
    variant: Variant | None = None

    @property
    def is_bound(self) -> bool:
        return self.variant is None

    @property
    def has_context(self) -> bool:
        return self.is_bound or SETTINGS[self.setting].context


def _slug(setting: str) -> str:
    return setting.replace("+", "_").replace("*", "_star")


def build_rows(variants: Sequence[Variant], settings: Sequence[str], bounds: bool) -> list[Row]:
    """Rows in table order: each variant's settings (its own or `settings`), then bounds.

    With several variants labels read 'NAME: setting'."""
    rows = []
    for v in variants:
        for s in v.settings or settings:
            label = f"{v.name}: {s}" if len(variants) > 1 else s
            rows.append(Row(f"{v.name}/{_slug(s)}", label, s, v))
    if bounds:
        rows += [Row(f"bounds/{b}", label, b) for b, label in BOUNDS.items()]
    return rows


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


# ------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class RunInputs:
    """What `Evaluation` works on: the split's pairs, the rows, the metric embedder."""

    sampler: object
    rows: list[Row]
    embedder: ClapEmbedder
    engines: Engines


class Evaluation:
    """Runs ground truth, references and every (row, batch) unit, each cached on disk.

    hook(unit) is called after each unit is computed and saved (unit: its cache path).
    """

    def __init__(self, inputs: RunInputs, config: EvalConfig, workspace: Workspace,
                 progress: bool = True, hook: Callable[[str], None] | None = None):
        self.sampler = inputs.sampler
        self.rows = inputs.rows
        self.embedder = inputs.embedder
        self.engines = inputs.engines
        self.cfg = config
        self.proto = config.protocol
        self.ws = workspace
        self.hook = hook
        self.n_candidates = self.proto.n_batches * self.proto.batch_size
        total = self.n_candidates * (1 + len(self.rows)) + 2 * self.proto.n_ref
        self.bar = tqdm(total=total, desc="evaluating", unit="item", disable=not progress)

    # -------------------------------------------------------------- helpers

    def _done(self, unit: str) -> None:
        if self.hook is not None:
            self.hook(unit)

    def _embed(self, clips: list) -> np.ndarray:
        """Metric embeddings (N, D) float32 of N clips (C, S)."""
        return self.embedder.embed_audio(clips)

    def _chunks(self, start: int, stop: int):
        for s in range(start, stop, self.cfg.chunk):
            yield range(s, min(s + self.cfg.chunk, stop))

    def batch_range(self, b: int) -> range:
        return range(b * self.proto.batch_size, (b + 1) * self.proto.batch_size)

    def candidate(self, g: int):
        return self.sampler.sample(g, CANDIDATE_EPOCH)

    def _reference(self, index) -> object:
        return self.sampler.sample(int(index), REFERENCE_EPOCH)

    # -------------------------------------------------------- ground truth

    def ground_truth(self, b: int) -> dict[str, np.ndarray]:
        """Batch b's candidates: target_audio, clap_audio, caption_text (B, D) metric
        embeddings; songs, keys (B,) str."""
        rel = f"ground_truth/batch_{b:03d}.npz"
        cached = self.ws.load_arrays(rel)
        if cached is not None:
            self.bar.update(self.proto.batch_size)
            return cached
        names = ("target_audio", "clap_audio", "caption_text", "songs", "keys")
        parts: dict[str, list] = {k: [] for k in names}
        for items in self._chunks(self.batch_range(b).start, self.batch_range(b).stop):
            pairs = [self.candidate(g) for g in items]
            parts["target_audio"].append(self._embed([p.target for p in pairs]))
            parts["clap_audio"].append(self._embed([p.clap_audio for p in pairs]))
            parts["caption_text"].append(self.embedder.embed_text([p.caption for p in pairs]))
            parts["songs"] += [p.song_id for p in pairs]
            parts["keys"] += [pair_key(p) for p in pairs]
            self.bar.update(len(pairs))
        out = {k: np.concatenate(v) if k not in ("songs", "keys") else np.array(v) for k, v in parts.items()}
        self.ws.save_arrays(rel, **out)
        self._done(rel)
        return out

    # ---------------------------------------------------------- references

    def references(self, candidate_keys: set[str]) -> dict[str, np.ndarray]:
        """The reference set: emb (M, D) of real target stems, mix_x (M, D) of their real
        mixes, mix_xp (M, D) of the anti-reference mixes, songs (M,), n_overlap."""
        chunks: list[dict] = []
        for c in range(self._n_ref_chunks()):
            chunks.append(self._reference_chunk(c, candidate_keys, chunks[-1] if chunks else None))
        ref = {k: np.concatenate([c[k] for c in chunks]) for k in ("emb", "mix_x", "songs", "indices")}
        perm = anti_reference_pairs(ref["songs"], rng_for(self.cfg.seed, _TAG_ANTI))
        ref["mix_xp"] = np.concatenate([self._anti_chunk(c, ref["indices"], perm)
                                        for c in range(self._n_ref_chunks())])
        ref["n_overlap"] = int(sum(int(c["overlap"]) for c in chunks))
        return ref

    def _n_ref_chunks(self) -> int:
        return math.ceil(self.proto.n_ref / REF_CHUNK)

    def _reference_chunk(self, c: int, candidate_keys: set[str], prev: dict | None) -> dict[str, np.ndarray]:
        """References c*REF_CHUNK.. : epoch-1 pairs in index order after those of chunk
        `prev`, skipping pairs equal to a candidate while fewer than n_ref have been
        skipped in all. Arrays: emb, mix_x (m, D); songs, indices (m,); skipped, overlap."""
        rel = f"references/chunk_{c:03d}.npz"
        want = min(REF_CHUNK, self.proto.n_ref - c * REF_CHUNK)
        cached = self.ws.load_arrays(rel)
        if cached is not None:
            self.bar.update(want)
            return cached
        state = {"index": int(prev["indices"][-1]) + 1 if prev is not None else 0,
                 "skipped": int(prev["skipped"]) if prev is not None else 0, "overlap": 0}
        stream = self._accepted_references(candidate_keys, state)
        emb, mix, songs, indices = [], [], [], []
        for items in self._chunks(0, want):
            batch = [next(stream) for _ in items]
            emb.append(self._embed([p.target for _, p in batch]))
            mix.append(self._embed([build_mix(p.context, p.target, SAMPLE_RATE) for _, p in batch]))
            songs += [p.song_id for _, p in batch]
            indices += [i for i, _ in batch]
            self.bar.update(len(batch))
        out = {"emb": np.concatenate(emb), "mix_x": np.concatenate(mix), "songs": np.array(songs),
               "indices": np.array(indices), "skipped": np.array(state["skipped"]),
               "overlap": np.array(state["overlap"])}
        self.ws.save_arrays(rel, **out)
        self._done(rel)
        return out

    def _accepted_references(self, candidate_keys: set[str], state: dict):
        """Yields (index, pair) of reference pairs from state['index'] on, updating the
        'index', 'skipped' and 'overlap' counts in `state`."""
        while True:
            index = state["index"]
            state["index"] += 1
            pair = self._reference(index)
            clash = pair_key(pair) in candidate_keys
            if clash and state["skipped"] < self.proto.n_ref:
                state["skipped"] += 1
                continue
            state["overlap"] += int(clash)
            yield index, pair

    def _anti_chunk(self, c: int, indices: np.ndarray, perm: np.ndarray) -> np.ndarray:
        """Anti-reference mix embeddings of chunk c: reference context i with the target
        stem of reference perm[i] (another song)."""
        rel = f"references/anti_{c:03d}.npz"
        items = range(c * REF_CHUNK, min((c + 1) * REF_CHUNK, self.proto.n_ref))
        cached = self.ws.load_arrays(rel)
        if cached is not None:
            self.bar.update(len(items))
            return cached["mix_xp"]
        out = []
        for part in self._chunks(items.start, items.stop):
            mixes = [build_mix(self._reference(indices[i]).context, self._reference(indices[perm[i]]).target,
                               SAMPLE_RATE) for i in part]
            out.append(self._embed(mixes))
            self.bar.update(len(part))
        mix_xp = np.concatenate(out)
        self.ws.save_arrays(rel, mix_xp=mix_xp)
        self._done(rel)
        return mix_xp

    # ------------------------------------------------------------- rows

    def row_batch(self, row: Row, b: int) -> dict[str, np.ndarray]:
        """Row x batch: emb (B, D) of the candidates, mix (B, D) of context + candidate
        (rows with context, else (0, D)), wall (s of generation), audio_seconds."""
        rel = f"rows/{row.key}/batch_{b:03d}.npz"
        cached = self.ws.load_arrays(rel)
        if cached is not None:
            self.bar.update(self.proto.batch_size)
            return cached
        emb, mix, wall, seconds = [], [], 0.0, 0.0
        for items in self._chunks(self.batch_range(b).start, self.batch_range(b).stop):
            pairs = [self.candidate(g) for g in items]
            stems = []
            for g, pair in zip(items, pairs):
                stem, elapsed = self.produce(row, pair, g)
                stems.append(stem)
                wall += elapsed
                seconds += stem.shape[-1] / SAMPLE_RATE
                self.bar.update(1)
            emb.append(self._embed(stems))
            if row.has_context:
                mix.append(self._embed([build_mix(p.context, s, SAMPLE_RATE) for p, s in zip(pairs, stems)]))
        out = {"emb": np.concatenate(emb),
               "mix": np.concatenate(mix) if mix else np.zeros((0, self.embedder.dim), np.float32),
               "wall": np.array(wall), "audio_seconds": np.array(seconds)}
        self.ws.save_arrays(rel, **out)
        self._done(rel)
        return out

    def produce(self, row: Row, pair, g: int) -> tuple[np.ndarray, float]:
        """The candidate stem (2, N) of item g for `row`, and its generation wall time (s)."""
        if row.setting == "real":
            return pair.target, 0.0
        if row.setting == "noise":
            return white_noise(pair.target, derive_seed(self.cfg.seed, _TAG_NOISE, g)), 0.0
        if row.setting == "random":
            return self.other_song_stem(pair, g), 0.0
        return self.generate(row.variant, SETTINGS[row.setting], pair, g)

    def other_song_stem(self, pair, g: int, tries: int = 64) -> np.ndarray:
        """The target stem of a random epoch-2 pair from a song other than `pair`'s."""
        rng = rng_for(self.cfg.seed, _TAG_RANDOM, g)
        for offset in rng.integers(1, 1 << 20, size=tries):
            other = self.sampler.sample(g + int(offset), RANDOM_EPOCH)
            if other.song_id != pair.song_id:
                return other.target
        raise ValueError(f"found no pair from a song other than {pair.song_id} in {tries} draws: "
                         f"the random-pairing bound needs at least 2 songs in the split")

    def generate(self, variant: Variant, setting: Setting, pair, g: int) -> tuple[np.ndarray, float]:
        """Generate item g's stem (2, N) with the variant's engine; (stem, wall seconds)."""
        from sideman.plugin_host.engine import Controls
        from sideman.plugin_host.engine_api import GenerationSettings

        n = pair.target.shape[-1]
        engine = self.engines.warm(variant.bundle, variant.steps, n / SAMPLE_RATE)
        guidance = engine.bundle.manifest["dit"].get("guidance", {})
        settings = GenerationSettings(
            seed=derive_seed(self.cfg.seed, _TAG_GENERATE, g), steps=variant.steps,
            guidance_context=_first(variant.guidance_context, guidance.get("context"), 1.25),
            guidance_clap=_first(variant.guidance_clap, guidance.get("clap"), 1.25))
        start = time.perf_counter()
        clap = clap_condition(engine, setting, pair, settings.seed,
                              lambda caption: self.engines.text_embedding(variant.bundle, caption))
        stem = engine.generate(pair.context if setting.context else None, n / SAMPLE_RATE, settings,
                               controls=Controls(clap_embedding=clap))
        return stem, time.perf_counter() - start

    # ---------------------------------------------------------- metrics

    def row_metrics(self, row: Row, b: int, gt: dict, refs: "References") -> dict:
        """Row x batch metrics {name: value} plus 'wall' and 'audio_seconds', cached as JSON."""
        rel = f"rows/{row.key}/batch_{b:03d}.json"
        cached = self.ws.load_json(rel)
        if cached is not None:
            self.bar.update(self.proto.batch_size)
            return cached
        unit = self.row_batch(row, b)
        out = distribution_scores(refs, unit["emb"], self.proto, derive_seed(self.cfg.seed, _TAG_KD, b))
        if row.has_context:
            y = unit["mix"]
            out["apa"] = apa_from_distances(refs.mix_x.distance(y), refs.mix_xp.distance(y), refs.d_x_xp)
        out.update(clap_part(row, unit["emb"], gt))
        out.update(wall=float(unit["wall"]), audio_seconds=float(unit["audio_seconds"]))
        self.ws.save_json(rel, out)
        self._done(rel)
        return out

    def run(self) -> tuple[dict[str, list[dict]], "References"]:
        """Every unit; returns ({row key: per-batch metric dicts}, the references)."""
        try:
            gts = [self.ground_truth(b) for b in range(self.proto.n_batches)]
            refs = References.of(self.references({str(k) for gt in gts for k in gt["keys"]}), self.proto.k)
            per_row = {row.key: [self.row_metrics(row, b, gts[b], refs) for b in range(self.proto.n_batches)]
                       for row in self.rows}
        finally:
            self.bar.close()
        return per_row, refs


@dataclass(frozen=True)
class GaussianRef:
    """Mean (D,) and unbiased covariance (D, D) of a fixed set, for repeated Fréchet distances."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, emb) -> "GaussianRef":
        return cls(*gaussian_stats(emb))

    def distance(self, emb) -> float:
        """Squared Fréchet distance to the Gaussian fitted to `emb` (N, D), as
        `distribution_metrics.fad`. For N <= D the trace term comes from the N x N matrix
        Yc S Yc^T / (N - 1) (Yc: centred rows, S: this covariance), whose eigenvalues are
        the non-zero ones of S^1/2 S_Y S^1/2: one small eigenproblem instead of two D x D."""
        y = np.asarray(emb, np.float64)
        n = len(y)
        if n > y.shape[1]:
            mu, cov = gaussian_stats(y)
            return frechet_distance(self.mean, self.cov, mu, cov)
        if n < 2:
            raise ValueError("need at least 2 embeddings to fit a covariance")
        yc = y - y.mean(axis=0)
        m = yc @ self.cov @ yc.T / (n - 1)
        tr_sqrt = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None))))
        diff = y.mean(axis=0) - self.mean
        value = diff @ diff + np.trace(self.cov) + np.sum(yc * yc) / (n - 1) - 2.0 * tr_sqrt
        return max(float(value), 0.0)


@dataclass(frozen=True)
class References:
    """The reference side of every metric: the real stems (ReferenceSet, and its Gaussian
    for FAD), the real mixes X and anti-reference mixes X' (Gaussians) with d(X, X')."""

    stems: ReferenceSet
    stem_gaussian: GaussianRef
    mix_x: GaussianRef
    mix_xp: GaussianRef
    d_x_xp: float
    n_overlap: int

    @classmethod
    def of(cls, ref: dict[str, np.ndarray], k: int) -> "References":
        stems = ReferenceSet.from_embeddings(ref["emb"], k)
        mix_x = GaussianRef.of(ref["mix_x"])
        return cls(stems, GaussianRef(stems.mean, stems.cov), mix_x, GaussianRef.of(ref["mix_xp"]),
                   mix_x.distance(ref["mix_xp"]), int(ref["n_overlap"]))


def _first(*values):
    return next(v for v in values if v is not None)


def pair_key(pair) -> str:
    """Identifies a pair's target window: 'song/stem@start'."""
    return f"{pair.song_id}/{pair.target_stem}@{pair.target_start}"


def distribution_scores(refs: References, emb: np.ndarray, proto: Protocol, seed: int) -> dict[str, float]:
    """KD, FAD, Density, Coverage of candidates (B, D) against the reference stems."""
    y = np.asarray(emb, np.float64)
    kd, _ = kernel_distance(refs.stems.embeddings, y, proto.kd_subsets, proto.kd_subset_size, seed)
    density, coverage = density_coverage(refs.stems, y)
    return {"kd": kd, "fad": refs.stem_gaussian.distance(y), "density": density, "coverage": coverage}


def clap_part(row: Row, emb: np.ndarray, gt: dict) -> dict[str, float]:
    """CS_AA and CS_TA of candidates (B, D) with the row's ground truth (bounds: the
    target stem and its caption; the real bound has no CS_AA)."""
    if row.setting == "real":
        return {"cs_ta": clap_score(emb, gt["caption_text"])}
    setting = "ctx" if row.is_bound else SETTINGS[row.setting].ground_truth
    return clap_scores(emb, setting, gt["target_audio"], gt["caption_text"],
                       gt["clap_audio"], gt["caption_text"])


# ------------------------------------------------------------------- top level


def run_config(config: EvalConfig, data: Path, sampler, embedder: ClapEmbedder) -> dict:
    """What must not change between a run and its resumption (JSON-able)."""
    return {"config": asdict(config), "data": str(Path(data).resolve()),
            "songs": list(sampler.song_ids), "embedder": embedder.identity}


def variant_identity(variant: Variant, engines: Engines) -> dict:
    engine = engines.get(variant.bundle)
    return {"bundle_id": engine.bundle_id, "steps": variant.steps,
            "guidance_context": variant.guidance_context, "guidance_clap": variant.guidance_clap}


def prepare_workspace(out: Path, resume: bool, identity: dict, variants: dict[str, dict]) -> Workspace:
    """OUT/cache, emptied unless resuming; a resumed cache must match `identity` and the
    variants' identities (bundle hash, steps, guidance)."""
    ws = Workspace(Path(out) / "cache")
    stored = ws.load_json("config.json")
    if ws.root.exists() and not resume:
        if stored is None and any(ws.root.iterdir()):
            raise ValueError(f"{ws.root} exists and was not written by sideman eval; choose another --out")
        shutil.rmtree(ws.root)
    elif resume and stored is not None and stored != identity:
        changed = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise ValueError(f"cannot resume: the cache in {ws.root} was made with another "
                         f"{' and '.join(changed)}; run without --resume to start over")
    ws.save_json("config.json", identity)
    for name, ident in variants.items():
        old = ws.load_json(f"rows/{name}/variant.json")
        if old is not None and old != ident:
            raise ValueError(f"cannot resume: variant '{name}' in {ws.root} was another bundle or "
                             f"other steps/guidance; rename it or run without --resume")
        ws.save_json(f"rows/{name}/variant.json", ident)
    return ws


def available_settings(variants: Sequence[Variant], settings: Sequence[str] | None,
                       engines: Engines) -> tuple[tuple[str, ...], list[str]]:
    """The run's settings (all by default) and notes on those left out.

    Settings a bundle cannot run are dropped when none were asked for, and raise
    ValueError when asked for explicitly (per variant or for the run)."""
    notes, chosen = [], tuple(settings or SETTINGS)
    for v in variants:
        bundle = engines.get(v.bundle).bundle
        for s in v.settings or chosen:
            lacking = missing_parts(s, bundle)
            if lacking and (settings or v.settings):
                raise ValueError(f"setting {s} needs the bundle parts {', '.join(lacking)}, "
                                 f"which {v.bundle} lacks")
            if lacking:
                notes.append(f"{v.name}: {s} left out (the bundle has no {', '.join(lacking)})")
    if not settings:
        users = [engines.get(v.bundle).bundle for v in variants if not v.settings]
        chosen = tuple(s for s in chosen if not any(missing_parts(s, bundle) for bundle in users))
    return chosen, notes


def evaluate(data: Path, variants: Sequence[Variant], out: Path, config: EvalConfig,
             settings: Sequence[str] | None = None, embedder: str = "house",
             clap_model: Path | None = None, resume: bool = False, progress: bool = True,
             threads: int = 0, hook: Callable[[str], None] | None = None,
             engines: Engines | None = None) -> Report:
    """Evaluate one or more variants on a data set's split; write the report to `out`.

    Returns the Report (also written as OUT/report.md, report.csv, results.json). With
    several variants (comparison mode) the table gains the wall time per second of audio.
    threads: onnxruntime threads (0: all cores); engines: loaded engines to reuse across
    calls (default: new ones with `threads`); hook: see `Evaluation`.
    """
    from sideman.data.layouts import read_multitrack
    from sideman.data.pairs import PairConfig, PairSampler

    config.protocol.check()
    if not variants:
        raise ValueError("nothing to evaluate: give a bundle or variants to compare")
    if len({v.name for v in variants}) != len(variants) or any(v.name == "bounds" for v in variants):
        raise ValueError("variant names must differ from each other and from 'bounds'")
    engines = engines or Engines(threads)
    chosen, notes = available_settings(variants, settings, engines)
    pairs_cfg = PairConfig(seconds=config.seconds, clap_seconds=config.clap_seconds or config.seconds,
                           seed=config.seed)
    sampler = PairSampler(read_multitrack(data, config.layout, progress=progress), pairs_cfg, config.split)
    emb = metric_embedder(embedder, clap_model, engines.get(variants[0].bundle))
    identity = run_config(config, data, sampler, emb)
    ws = prepare_workspace(out, resume, identity, {v.name: variant_identity(v, engines) for v in variants})
    rows = build_rows(variants, chosen, config.bounds)
    per_row, refs = Evaluation(RunInputs(sampler, rows, emb, engines), config, ws, progress, hook).run()
    report = make_report(rows, per_row, config, identity, refs, notes, compare=len(variants) > 1)
    report.write(Path(out))
    return report


def make_report(rows: list[Row], per_row: dict[str, list[dict]], config: EvalConfig, identity: dict,
                refs: References, notes: list[str], compare: bool) -> Report:
    """Mean +- std over batches of every metric of every row, as a Report."""
    proto = config.protocol
    results = []
    for row in rows:
        batches = per_row[row.key]
        names = [k for k in batches[0] if k not in ("wall", "audio_seconds")]
        stats = mean_over_batches(lambda s: {k: batches[s.start // proto.batch_size][k] for k in names},
                                  proto.n_batches * proto.batch_size, proto.n_batches, proto.batch_size)
        wall = sum(b["wall"] for b in batches)
        audio = sum(b["audio_seconds"] for b in batches)
        results.append(RowResult(row.label, row.variant.name if row.variant else "", row.setting, stats,
                                 wall / audio if not row.is_bound and audio > 0 else None))
    notes = list(notes) + list(LEGEND)
    n_ref = len(refs.stems.embeddings)
    if refs.n_overlap:
        notes.append(f"{refs.n_overlap} of {n_ref} references repeat a candidate's window "
                     f"(the split is too small for disjoint sets)")
    meta = {**identity, "n_ref": n_ref}
    return Report(results, meta, notes, compare)
