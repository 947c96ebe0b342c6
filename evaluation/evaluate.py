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
- CS_AA, CS_TA with the paper's ground truths (`evaluation.clap_score`): for CLAP_A and
  CLAP_T/CLAP_B the reference audio is the pair's CLAP segment and the text its caption;
  for ctx, uncond and CLAP_A* the removed target stem and its caption.

Bounds, computed the same way on the same candidate pairs:

- 'real via codec' (one row per variant): the real target stems encoded and decoded by
  the variant's autoencoder with its bundle's decoding settings, the ceiling its codec
  sets on every generated row (CS_AA: each reconstruction against its original);

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

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from sideman.evaluation.notes import Transcriber
from sideman.models.clap import ClapEmbedder
from sideman.evaluation.apa import anti_reference_pairs, build_mix
from sideman.evaluation.distribution_metrics import mean_over_batches
from sideman.evaluation.eval_notes import NoteSide, pack_notes, summarise
from sideman.evaluation.eval_report import Report, RowResult
from sideman.evaluation.eval_config import (  # noqa: F401 (re-exported: the `sideman eval` API)
    BOUNDS, CANDIDATE_EPOCH, CODEC, CODEC_LABEL, LEGEND, PRESETS, RANDOM_EPOCH, REF_CHUNK, REFERENCE_EPOCH,
    SAMPLE_RATE, SETTINGS, TAG_ANTI, TAG_CODEC, TAG_GENERATE, TAG_KD, TAG_NOISE, TAG_RANDOM, EvalConfig,
    Protocol, Row, Setting, Variant, build_rows, load_variants, missing_parts, parse_settings, parse_variant)
from sideman.evaluation.eval_engines import (  # noqa: F401
    EngineClapEmbedder, Engines, Workspace, clap_condition, derive_seed, metric_embedder, rng_for, white_noise)
from sideman.evaluation.eval_references import (  # noqa: F401
    GaussianRef, References, clap_part, distribution_scores, first_of, pair_key)


# ------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class RunInputs:
    """What `Evaluation` works on: the split's pairs, the rows, the metric embedder."""

    sampler: object
    rows: list[Row]
    embedder: ClapEmbedder
    engines: Engines
    transcriber: object = None  # sideman.evaluation.notes.Transcriber, or None: no note figures
    spaces: dict | None = None  # extra embedders {name: embedder with embed_audio} for KD/FAD/D/C/APA


class Evaluation:
    """Runs ground truth, references and every (row, batch) unit, each cached on disk.

    hook(unit) is called after each unit is computed and saved (unit: its cache path).
    """

    def __init__(self, inputs: RunInputs, config: EvalConfig, workspace: Workspace,
                 progress: bool = True, hook: Callable[[str], None] | None = None):
        self.sampler = inputs.sampler
        self.rows = inputs.rows
        self.embedder = inputs.embedder
        self.spaces = dict(inputs.spaces or {})
        self.engines = inputs.engines
        self.cfg = config
        self.proto = config.protocol
        self.ws = workspace
        self.hook = hook
        self.notes = NoteSide(inputs.transcriber, workspace, config.seed) if inputs.transcriber else None
        self.n_candidates = self.proto.n_batches * self.proto.batch_size
        total = self.n_candidates * (1 + len(self.rows) + bool(self.notes)) + 2 * self.proto.n_ref
        self.bar = tqdm(total=total, desc="evaluating", unit="item", disable=not progress)

    # -------------------------------------------------------------- helpers

    def _done(self, unit: str) -> None:
        if self.hook is not None:
            self.hook(unit)

    def _embed(self, clips: list) -> np.ndarray:
        """Metric embeddings (N, D) float32 of N clips (C, S)."""
        return self.embedder.embed_audio(clips)

    def _embed_spaces(self, clips: list, name: str) -> dict[str, np.ndarray]:
        """{f'{name}__{space}': (N, D_space)} in every extra embedding space."""
        return {f"{name}__{space}": e.embed_audio(clips) for space, e in self.spaces.items()}

    def _complete(self, cached: dict | None, *names: str) -> bool:
        """A cached unit holds `names` in every extra space (units of older runs may not)."""
        return cached is not None and all(f"{n}__{s}" in cached for n in names for s in self.spaces)

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
        keys = ["emb", "mix_x", "songs", "indices"] + [f"{n}__{s}" for n in ("emb", "mix_x") for s in self.spaces]
        ref = {k: np.concatenate([c[k] for c in chunks]) for k in keys}
        perm = anti_reference_pairs(ref["songs"], rng_for(self.cfg.seed, TAG_ANTI))
        anti = [self._anti_chunk(c, ref["indices"], perm) for c in range(self._n_ref_chunks())]
        ref.update({k: np.concatenate([a[k] for a in anti]) for k in anti[0]})
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
        if self._complete(cached, "emb", "mix_x"):
            self.bar.update(want)
            return cached
        state = {"index": int(prev["indices"][-1]) + 1 if prev is not None else 0,
                 "skipped": int(prev["skipped"]) if prev is not None else 0, "overlap": 0}
        stream = self._accepted_references(candidate_keys, state)
        emb, mix, songs, indices, extra = [], [], [], [], []
        for items in self._chunks(0, want):
            batch = [next(stream) for _ in items]
            targets = [p.target for _, p in batch]
            mixes = [build_mix(p.context, p.target, SAMPLE_RATE) for _, p in batch]
            emb.append(self._embed(targets))
            mix.append(self._embed(mixes))
            extra.append({**self._embed_spaces(targets, "emb"), **self._embed_spaces(mixes, "mix_x")})
            songs += [p.song_id for _, p in batch]
            indices += [i for i, _ in batch]
            self.bar.update(len(batch))
        out = {"emb": np.concatenate(emb), "mix_x": np.concatenate(mix), "songs": np.array(songs),
               "indices": np.array(indices), "skipped": np.array(state["skipped"]),
               "overlap": np.array(state["overlap"])}
        out.update({k: np.concatenate([e[k] for e in extra]) for k in extra[0]} if extra else {})
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

    def _anti_chunk(self, c: int, indices: np.ndarray, perm: np.ndarray) -> dict[str, np.ndarray]:
        """Anti-reference mix embeddings of chunk c, mix_xp (and mix_xp__<space>): reference
        context i with the target stem of reference perm[i] (another song)."""
        rel = f"references/anti_{c:03d}.npz"
        items = range(c * REF_CHUNK, min((c + 1) * REF_CHUNK, self.proto.n_ref))
        cached = self.ws.load_arrays(rel)
        if self._complete(cached, "mix_xp"):
            self.bar.update(len(items))
            return cached
        parts = []
        for part in self._chunks(items.start, items.stop):
            mixes = [build_mix(self._reference(indices[i]).context, self._reference(indices[perm[i]]).target,
                               SAMPLE_RATE) for i in part]
            parts.append({"mix_xp": self._embed(mixes), **self._embed_spaces(mixes, "mix_xp")})
            self.bar.update(len(part))
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        self.ws.save_arrays(rel, **out)
        self._done(rel)
        return out

    # ------------------------------------------------------------- rows

    def row_batch(self, row: Row, b: int) -> dict[str, np.ndarray]:
        """Row x batch: emb (B, D) of the candidates, mix (B, D) of context + candidate
        (rows with context, else (0, D)), wall (s of generation), audio_seconds."""
        rel = f"rows/{row.key}/batch_{b:03d}.npz"
        cached = self.ws.load_arrays(rel)
        if self._complete(cached, "emb", "mix") and (self.notes is None or "note_offsets" in cached):
            self.bar.update(self.proto.batch_size)
            return cached
        emb, mix, wall, seconds, notes, extra = [], [], 0.0, 0.0, [], []
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
            extra.append(self._embed_spaces(stems, "emb"))
            if self.notes is not None:
                notes += self.notes.stem_notes(stems)
            if row.has_context:
                mixes = [build_mix(p.context, s, SAMPLE_RATE) for p, s in zip(pairs, stems)]
                mix.append(self._embed(mixes))
                extra[-1].update(self._embed_spaces(mixes, "mix"))
        out = {"emb": np.concatenate(emb),
               "mix": np.concatenate(mix) if mix else np.zeros((0, self.embedder.dim), np.float32),
               "wall": np.array(wall), "audio_seconds": np.array(seconds)}
        for space, e in self.spaces.items():
            out[f"emb__{space}"] = np.concatenate([x[f"emb__{space}"] for x in extra])
            out[f"mix__{space}"] = (np.concatenate([x[f"mix__{space}"] for x in extra]) if row.has_context
                                    else np.zeros((0, e.dim), np.float32))
        if self.notes is not None:
            out.update(pack_notes(notes))
        self.ws.save_arrays(rel, **out)
        self._done(rel)
        return out

    def produce(self, row: Row, pair, g: int) -> tuple[np.ndarray, float]:
        """The candidate stem (2, N) of item g for `row`, and its generation wall time (s)."""
        if row.setting == "real":
            return pair.target, 0.0
        if row.setting == "noise":
            return white_noise(pair.target, derive_seed(self.cfg.seed, TAG_NOISE, g)), 0.0
        if row.setting == "random":
            return self.other_song_stem(pair, g), 0.0
        if row.is_codec:
            return self.reconstruct(row.variant, pair, g)
        return self.generate(row.variant, SETTINGS[row.setting], pair, g)

    def other_song_stem(self, pair, g: int, tries: int = 64) -> np.ndarray:
        """The target stem of a random epoch-2 pair from a song other than `pair`'s."""
        rng = rng_for(self.cfg.seed, TAG_RANDOM, g)
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
            seed=derive_seed(self.cfg.seed, TAG_GENERATE, g), steps=variant.steps,
            guidance_context=first_of(variant.guidance_context, guidance.get("context"), 1.25),
            guidance_clap=first_of(variant.guidance_clap, guidance.get("clap"), 1.25))
        start = time.perf_counter()
        clap = clap_condition(engine, setting, pair, settings.seed,
                              lambda caption: self.engines.text_embedding(variant.bundle, caption))
        stem = engine.generate(pair.context if setting.context else None, n / SAMPLE_RATE, settings,
                               controls=Controls(clap_embedding=clap))
        return stem, time.perf_counter() - start

    def reconstruct(self, variant: Variant, pair, g: int) -> tuple[np.ndarray, float]:
        """Item g's real target stem encoded and decoded by the variant's autoencoder, with
        the bundle's decoding steps and mode; (stem (2, N), wall seconds)."""
        n = pair.target.shape[-1]
        engine = self.engines.warm(variant.bundle, variant.steps, n / SAMPLE_RATE)
        start = time.perf_counter()
        stem = engine.reconstruct(pair.target, seed=derive_seed(self.cfg.seed, TAG_CODEC, g))
        return stem, time.perf_counter() - start

    # ---------------------------------------------------------- metrics

    def row_metrics(self, row: Row, b: int, gt: dict, refs: dict[str, "References"]) -> dict:
        """Row x batch metrics {name: value} ('space:name' in the extra spaces) plus 'wall'
        and 'audio_seconds', cached as JSON. refs: {'' (the CLAP space) or space: References}."""
        rel = f"rows/{row.key}/batch_{b:03d}.json"
        cached = self.ws.load_json(rel)
        if cached is not None and all(f"{s}:fad" in cached for s in self.spaces):
            self.bar.update(self.proto.batch_size)
            return cached
        unit = self.row_batch(row, b)
        out = {}
        for space, ref in refs.items():
            suffix, prefix = (f"__{space}", f"{space}:") if space else ("", "")
            scores = distribution_scores(ref, unit["emb" + suffix], self.proto, derive_seed(self.cfg.seed, TAG_KD, b))
            if row.has_context:
                scores["apa"] = ref.apa(unit["mix" + suffix])
            out.update({prefix + k: v for k, v in scores.items()})
        out.update(clap_part(row, unit["emb"], gt))
        out.update(wall=float(unit["wall"]), audio_seconds=float(unit["audio_seconds"]))
        self.ws.save_json(rel, out)
        self._done(rel)
        return out

    # ------------------------------------------------------------ notes

    def note_figures(self) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
        """({row key: {figure: (N,)}}, roles (N,)) over all candidates (after `run`'s units)."""
        per_row: dict[str, dict[str, list]] = {row.key: {} for row in self.rows}
        roles = []
        for b in range(self.proto.n_batches):
            ctx, batch_roles, fresh = self.notes.contexts(
                b, lambda: [self.candidate(g) for g in self.batch_range(b)])
            self.bar.update(self.proto.batch_size)
            if fresh:
                self._done(f"notes/context_{b:03d}.npz")
            roles.append(batch_roles)
            for row in self.rows:
                figs = self.notes.figures(self.ws.load_arrays(f"rows/{row.key}/batch_{b:03d}.npz"),
                                          ctx, self.batch_range(b).start)
                for name, values in figs.items():
                    per_row[row.key].setdefault(name, []).append(values)
        return ({key: {f: np.concatenate(v) for f, v in figs.items()} for key, figs in per_row.items()},
                np.concatenate(roles))

    def example_pictures(self, out: Path, roles: np.ndarray, per_role: int = 2) -> list[Path]:
        """Per role, OUT/notes_<role>.png: its first `per_role` candidates as context, the
        first generated row's stem and the real stem, transcribed, over their spectrograms."""
        from sideman.evaluation.note_plots import Panel, plot_examples

        row = next((r for r in self.rows if not r.is_bound and not r.is_codec), self.rows[0])
        paths = []
        for role in sorted(set(roles.tolist())):
            examples = []
            for g in np.flatnonzero(roles == role)[:per_role]:
                pair = self.candidate(int(g))
                stem, _ = self.produce(row, pair, int(g))
                examples.append([Panel(f"{pair.song_id} context", pair.context, self.notes.transcriber.transcribe(pair.context)),
                                 Panel(f"{row.label}: {role}", stem, self.notes.transcriber.transcribe(stem)),
                                 Panel(f"real {role}", pair.target, self.notes.transcriber.transcribe(pair.target))])
            paths.append(plot_examples(examples, Path(out) / f"notes_{role}.png",
                                       f"{role}: basic-pitch notes over log-frequency spectrograms"))
        return paths

    def run(self) -> tuple[dict[str, list[dict]], "References", tuple | None]:
        """Every unit; returns ({row key: per-batch metric dicts}, the references, the note
        figures of `note_figures` or None)."""
        try:
            gts = [self.ground_truth(b) for b in range(self.proto.n_batches)]
            arrays = self.references({str(k) for gt in gts for k in gt["keys"]})
            refs = {space: References.of(arrays, self.proto.k, self.proto.pca, space) for space in ["", *self.spaces]}
            per_row = {row.key: [self.row_metrics(row, b, gts[b], refs) for b in range(self.proto.n_batches)]
                       for row in self.rows}
            notes = self.note_figures() if self.notes is not None else None
        finally:
            self.bar.close()
        return per_row, refs[""], notes


# ------------------------------------------------------------------- top level


def run_config(config: EvalConfig, data: Path, sampler, embedder: ClapEmbedder) -> dict:
    """What must not change between a run and its resumption, as it reads back from JSON
    (tuples become lists, so a stored config compares equal to a fresh one)."""
    import json

    return json.loads(json.dumps({"config": asdict(config), "data": str(Path(data).resolve()),
                                  "songs": list(sampler.song_ids), "embedder": embedder.identity}))


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
             engines: Engines | None = None, pictures: bool = True) -> Report:
    """Evaluate one or more variants on a data set's split; write the report to `out`.

    Returns the Report (also written as OUT/report.md, report.csv, results.json). With
    several variants (comparison mode) the table gains the wall time per second of audio.
    threads: onnxruntime threads (0: all cores); engines: loaded engines to reuse across
    calls (default: new ones with `threads`); hook: see `Evaluation`; pictures: with note
    figures, also OUT/notes_<role>.png (a few examples per role, regenerated).
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
    transcriber = Transcriber(threads=engines.threads or 0) if config.notes else None
    spaces = {name: space_embedder(name) for name in config.spaces}
    evaluation = Evaluation(RunInputs(sampler, rows, emb, engines, transcriber, spaces), config, ws, progress, hook)
    per_row, refs, figures = evaluation.run()
    if figures is not None and pictures:
        evaluation.example_pictures(out, figures[1])
    report = make_report(rows, per_row, config, identity, refs, notes, compare=len(variants) > 1)
    if figures is not None:
        report.note_rows = [summarise(row.label, figures[0][row.key], figures[1], config.seed) for row in rows]
    report.write(Path(out))
    return report


def space_embedder(name: str):
    """The embedder of an extra metric space: 'musicnn' (MSD_musicnn's 200-d penultimate layer)."""
    if name == "musicnn":
        from sideman.evaluation.musicnn import MusicnnEmbedder

        return MusicnnEmbedder()
    raise ValueError(f"unknown embedding space {name!r}: choose 'musicnn'")


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

