"""`sideman train all`: the whole stack, stage by stage, into one run folder.

    corpus -> autoencoder -> decoder_eq -> ae_eval -> clap -> bridge -> pairs
           -> dit_edm -> dit_consistency -> export -> eval

Run folder (``RUN``)::

    recipe.json              the recipe (pipeline.recipes) the run was started with
    stages/<stage>.json      one per finished stage: the settings it used, wall seconds,
                             its summary figures
    corpus/ autoencoder/ clap/ bridge/ pairs/ dit/    each stage's own run folder
                             (configs, last.pt, log.csv, loss-curve PNGs)
    autoencoder/autoencoder_eq.pt   the autoencoder with its output equaliser (what the
                             bundle holds; .npz and .png beside it: the measurement and its plot)
    autoencoder/eval/        `sideman ae eval`: reconstruction table and spectrograms
    bundle/                  the exported model bundle
    eval/                    `sideman eval` report, text-control check, speed
    REPORT.md                every figure of the run in one page

Resuming: a finished stage (its ``stages/*.json`` holds the same settings) is skipped; an
unfinished one resumes from its own checkpoints (every trainer resumes from ``last.pt``,
rendering and encoding keep finished songs and shards). A stage whose recorded settings
differ from the recipe's is an error: a run folder never mixes two recipes.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sideman.data.files import atomic_write
from sideman.pipeline.recipes import Recipe

__all__ = ["STAGES", "run_pipeline", "install_bundle", "Run"]


@dataclass
class Run:
    """A run folder and its recipe."""

    root: Path
    recipe: Recipe
    progress: bool = True

    def __truediv__(self, name: str) -> Path:
        return self.root / name


def _corpus(run: Run) -> dict:
    from sideman.data.corpus import render_corpus

    c = run.recipe.corpus
    report = render_corpus(c.songs, c.seconds, c.seed, run / "corpus", progress=run.progress)
    if len(report.failed) > c.songs // 10:  # a few silent-stem songs are expected and skipped
        raise RuntimeError(f"{len(report.failed)} of {c.songs} songs failed to render: {report.failed}")
    return {"songs": c.songs - len(report.failed), "seconds": c.seconds, "failed": report.failed}


def _autoencoder(run: Run) -> dict:
    from sideman.training.ae_training import train_autoencoder

    a = run.recipe.autoencoder
    train_autoencoder(run / "corpus", run / "autoencoder", a, seed=run.recipe.corpus.seed, progress=run.progress)
    return {"steps": a.steps}


def _decoder_eq(run: Run) -> dict:
    from sideman.training.decoder_eq import calibrate_autoencoder

    a = run.recipe.autoencoder
    return calibrate_autoencoder(run / "autoencoder" / "autoencoder.pt", run / "corpus", _equalised(run),
                                 run.recipe.decoder_eq, a.decode_steps, a.decode_mode,
                                 seed=run.recipe.corpus.seed, progress=run.progress)


def _equalised(run: Run) -> Path:
    """The autoencoder with its output equaliser (pairs are encoded with autoencoder.pt:
    the equaliser changes decoding only)."""
    return run / "autoencoder" / "autoencoder_eq.pt"


def _ae_eval(run: Run) -> dict:
    from sideman.evaluation.ae_eval import evaluate_autoencoder

    a, split = run.recipe.autoencoder, run.recipe.eval.split
    rows = evaluate_autoencoder(_equalised(run), run / "corpus",
                                run / "autoencoder" / "eval", clips=a.eval_clips, seconds=a.eval_seconds,
                                steps=a.decode_steps, mode=a.decode_mode, split=split,
                                progress=run.progress)
    return {r["system"]: {k: v for k, v in r.items() if k != "system"} for r in rows}


def _clap(run: Run) -> dict:
    from sideman.training.train_clap import train_house_clap

    c = run.recipe.clap
    train_house_clap(run / "corpus", run / "clap", c, seed=run.recipe.corpus.seed, progress=run.progress)
    return json.loads((run / "clap" / "summary.json").read_text())


def _bridge(run: Run) -> dict:
    from sideman.training.train_bridge import train_bridge

    b = run.recipe.bridge
    train_bridge(run / "clap" / "house_clap.pt", run / "corpus", run / "bridge", b, seed=run.recipe.corpus.seed,
                 progress=run.progress)
    return json.loads((run / "bridge" / "summary.json").read_text())


def _pairs(run: Run) -> dict:
    from sideman.models.autoencoder import load_autoencoder
    from sideman.models.clap_house import HouseClap, HouseClapEmbedder
    from sideman.training.dit_data import build_pair_latents

    p = run.recipe.pairs
    build_pair_latents(load_autoencoder(run / "autoencoder" / "autoencoder.pt"),
                       HouseClapEmbedder(HouseClap.load(run / "clap" / "house_clap.pt")),
                       run / "corpus", run / "pairs", p.count, p.seconds, p.clap_seconds,
                       seed=run.recipe.corpus.seed, split="train", progress=run.progress)
    return {"pairs": p.count}


def _dit(kind: str) -> Callable[[Run], dict]:
    def stage(run: Run) -> dict:
        from sideman.training.train_dit import train_dit

        d = run.recipe.dit
        edm = kind == "edm"
        train_dit(run / "pairs", run / "dit", kind, d, init=None if edm else run / "dit" / "dit_edm.pt",
                  seed=run.recipe.corpus.seed, progress=run.progress)
        rows = (run / "dit" / kind / "log.csv").read_text().strip().splitlines()
        return {"final_loss": float(rows[-1].split(",")[1]) if len(rows) > 1 else None}
    return stage


def _export(run: Run) -> dict:
    from sideman.export.bundle import export_bundle
    from sideman.models.autoencoder import load_autoencoder
    from sideman.models.bridge import ClapBridge
    from sideman.models.clap_house import HouseClap
    from sideman.models.dit_checkpoint import load_dit

    out = export_bundle(run / "bundle", load_autoencoder(_equalised(run)),
                        load_dit(run / "dit" / "dit_consistency.pt"),
                        HouseClap.load(run / "clap" / "house_clap.pt"),
                        ClapBridge.load(run / "bridge" / "bridge.pt"), name=run.recipe.name,
                        decode_steps=run.recipe.autoencoder.decode_steps,
                        decode_mode=run.recipe.autoencoder.decode_mode,
                        training={"recipe": run.recipe.to_dict()})
    return {"megabytes": round(sum(p.stat().st_size for p in out.iterdir()) / 1e6, 2)}


def _eval(run: Run) -> dict:
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.evaluation.evaluate import EvalConfig, Protocol, Variant, evaluate
    from sideman.evaluation.speed import time_generation
    from sideman.evaluation.text_control import text_control

    e = run.recipe.eval
    from sideman.evaluation.notes import Transcriber

    protocol = Protocol(e.batches, e.batch_size, e.references, kd_subsets=50,
                        kd_subset_size=min(200, e.batch_size), pca=e.pca)
    config = EvalConfig(protocol=protocol, seconds=e.seconds, split=e.split, spaces=e.spaces)
    engine = OnnxEngine(run / "bundle")
    # Resume an interrupted evaluation of this bundle; a cache of an earlier export is stale.
    cached = run / "eval" / "cache" / "rows" / "bundle" / "variant.json"
    resume = not cached.is_file() or json.loads(cached.read_text()).get("bundle_id") == engine.bundle_id
    evaluate(run / "corpus", [Variant("bundle", run / "bundle", e.steps)], run / "eval",
             config, e.settings, resume=resume, progress=run.progress)
    control = text_control(engine, run / "corpus", run / "eval", contexts=e.text_contexts,
                           seconds=e.seconds, steps=e.steps, split=e.split, progress=run.progress,
                           transcriber=Transcriber())
    speed = time_generation(engine, seconds=10.0, steps=e.steps)
    atomic_write(run / "eval" / "speed.json", json.dumps(speed, indent=2).encode())
    rows = {r["setting"]: {m: v["mean"] for m, v in r["metrics"].items()}
            for r in json.loads((run / "eval" / "results.json").read_text())["rows"]}
    return {"rows": rows, "text_control": control, "speed": speed}


STAGES: dict[str, tuple[str, Callable[[Run], dict], tuple[str, ...]]] = {
    # name: (what it does, the function, the recipe sections its result depends on)
    "corpus": ("render the synthetic corpus", _corpus, ("corpus",)),
    "autoencoder": ("train the autoencoder", _autoencoder, ("corpus", "autoencoder")),
    "decoder_eq": ("measure the autoencoder's output equaliser", _decoder_eq,
                   ("corpus", "autoencoder", "decoder_eq")),
    "ae_eval": ("evaluate the autoencoder on held-out songs", _ae_eval, ("corpus", "autoencoder", "decoder_eq")),
    "clap": ("train the house CLAP", _clap, ("corpus", "clap")),
    "bridge": ("train the CLAP bridge", _bridge, ("corpus", "clap", "bridge")),
    "pairs": ("encode DiT training pairs", _pairs, ("corpus", "autoencoder", "clap", "pairs")),
    "dit_edm": ("train the DiT with EDM", _dit("edm"),
                ("corpus", "autoencoder", "clap", "pairs", "dit")),
    "dit_consistency": ("consistency-train the C-DiT", _dit("consistency"),
                        ("corpus", "autoencoder", "clap", "pairs", "dit")),
    "export": ("export the bundle", _export,
               ("name", "corpus", "autoencoder", "decoder_eq", "clap", "bridge", "pairs", "dit")),
    "eval": ("evaluate the bundle", _eval,
             ("name", "corpus", "autoencoder", "decoder_eq", "clap", "bridge", "pairs", "dit", "eval")),
}


def _settings(recipe: Recipe, sections: tuple[str, ...]) -> dict:
    full = recipe.to_dict()
    return json.loads(json.dumps({k: full[k] for k in sections}))


def _start(root: Path, recipe: Recipe) -> None:
    root.mkdir(parents=True, exist_ok=True)
    file = root / "recipe.json"
    record = json.loads(json.dumps(recipe.to_dict()))
    if file.is_file():
        old = json.loads(file.read_text())
        if old != record:
            changed = sorted(k for k in record if old.get(k) != record[k])
            raise ValueError(f"{root} was started with another recipe (differs in: {', '.join(changed)}); "
                             f"use a new run folder")
    atomic_write(file, json.dumps(record, indent=2).encode())


def run_pipeline(root: str | Path, recipe: Recipe, stop_after: str | None = None,
                 progress: bool = True, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Run (or resume) every stage of ``recipe`` in ``root``; returns each finished stage's
    record. ``stop_after`` ends the run after that stage."""
    if stop_after is not None and stop_after not in STAGES:
        raise ValueError(f"unknown stage {stop_after!r}: choose from {', '.join(STAGES)}")
    run = Run(Path(root), recipe, progress)
    _start(run.root, recipe)
    records = {}
    for i, (name, (what, fn, sections)) in enumerate(STAGES.items(), 1):
        marker = run.root / "stages" / f"{name}.json"
        settings = _settings(recipe, sections)
        head = f"[{i}/{len(STAGES)}] {name}: {what}"
        if marker.is_file():
            record = json.loads(marker.read_text())
            if record["settings"] != settings:
                raise ValueError(f"{marker}: this stage ran with other settings; use a new run folder")
            log(f"{head} - done before ({record['seconds']:.0f} s)")
        else:
            log(f"{head} ...")
            started = time.time()
            summary = fn(run)
            record = {"stage": name, "settings": settings, "seconds": round(time.time() - started, 1),
                      "summary": summary}
            atomic_write(marker, json.dumps(record, indent=2, default=str).encode())
            log(f"{head} - finished in {record['seconds']:.0f} s")
        records[name] = record
        if name == stop_after:
            break
    if "eval" in records:
        from sideman.pipeline.report import write_report
        write_report(run.root, records)
        log(f"report: {run.root / 'REPORT.md'}")
    return records


def install_bundle(bundle: str | Path, target: str | Path) -> Path:
    """Copy a bundle folder to ``target`` (replacing it) through a temporary sibling, so
    the target is never half written."""
    bundle, target = Path(bundle), Path(target)
    if not (bundle / "manifest.json").is_file():
        raise FileNotFoundError(f"{bundle} is not a model bundle (no manifest.json)")
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(bundle, tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.replace(target)
    return target
