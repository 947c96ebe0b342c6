"""Recipes for `sideman train all`: every setting of every stage of the whole-stack
training, as dataclasses, with the presets in one place (:data:`RECIPES`).

The trainers' stages (autoencoder, CLAP, bridge, pairs, DiT) are defined once, in
training.stages, with the demo recipe's values as their defaults; this module adds the
corpus and evaluation stages and the presets.

A recipe is the full record of how a bundle was made; the run folder keeps it as
``recipe.json`` and each finished stage stores the part of it that it used, so a rerun
resumes stage by stage and refuses to mix two recipes in one folder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass

from sideman.training.decoder_eq import EqSettings
from sideman.training.stages import AutoencoderStage, BridgeStage, ClapStage, DiTStage, PairsStage


@dataclass(frozen=True)
class CorpusStage:
    """Synthetic corpus (`sideman corpus render`): songs x seconds, seeded."""

    songs: int = 160
    seconds: float = 30.0
    seed: int = 0


@dataclass(frozen=True)
class EvalStage:
    """`sideman eval` on held-out songs (ctx and ctx+CLAP settings, C-DiT ``steps`` steps)
    with basic-pitch note figures, and the text-control check (``text_contexts`` contexts
    per instrument role). Distribution metrics and APA are computed in the top ``pca``
    principal axes of the references (None: the full space), in the CLAP space and the
    extra embedding ``spaces``."""

    # 2 x 256 candidates against 500 references, compared in 8 PCA axes: measured on the
    # demo corpus, musicnn's APA puts real pairs at 0.94 and random pairings at 0.03 there;
    # at 2 x 128 in 16 axes real pairs scored 0.88-0.91 from run to run (docs/evaluation.md)
    batches: int = 2
    batch_size: int = 256
    references: int = 500
    pca: int | None = 8
    spaces: tuple[str, ...] = ("musicnn",)
    seconds: float = 10.0
    steps: int = 5
    split: str = "validation"
    settings: tuple[str, ...] = ("ctx", "ctx+clap_t", "ctx+clap_b")
    text_contexts: int = 8


@dataclass(frozen=True)
class Recipe:
    """The whole stack; ``name`` becomes the bundle's name."""

    name: str = "sideman-demo"
    corpus: CorpusStage = field(default_factory=CorpusStage)
    autoencoder: AutoencoderStage = field(default_factory=AutoencoderStage)
    decoder_eq: EqSettings = field(default_factory=EqSettings)  # the autoencoder's output equaliser
    clap: ClapStage = field(default_factory=ClapStage)
    bridge: BridgeStage = field(default_factory=BridgeStage)
    pairs: PairsStage = field(default_factory=PairsStage)
    dit: DiTStage = field(default_factory=DiTStage)
    eval: EvalStage = field(default_factory=EvalStage)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "Recipe":
        """Inverse of :meth:`to_dict` (JSON lists become tuples again)."""
        return _build(cls, raw)


def _build(kind, raw: dict):
    values = {}
    for f in fields(kind):
        if f.name not in raw:
            continue
        value = raw[f.name]
        sub = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
        if is_dataclass(sub):
            value = _build(type(sub), value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return kind(**values)


RECIPES: dict[str, Recipe] = {
    # The whole stack on this kind of 2-core CPU in about 2 hours: 160 songs x 30 s;
    # autoencoder `small` (2.48M), house CLAP `small` (1.35M), bridge `compact`, DiT `small`
    # (5.3M). It made the previous default bundle, whose CLAP towers and bridge the current
    # one keeps (scripts/train-default.sh trains its DiT on the band codec; README).
    "demo": Recipe(),
    # The same stages at toy sizes, for tests (a few minutes on 2 cores).
    "tiny": Recipe(
        name="sideman-tiny",
        corpus=CorpusStage(songs=6, seconds=6.0, seed=7),
        autoencoder=AutoencoderStage(preset="tiny", steps=6, batch_size=2, warmup=2, workers=0,
                                     eval_clips=1, eval_seconds=2.0),
        decoder_eq=EqSettings(windows=2, seconds=2.0),
        clap=ClapStage(preset="tiny", steps=4, batch_size=8),
        bridge=BridgeStage(preset="tiny", steps=6, batch_size=16),
        pairs=PairsStage(count=6, seconds=2.0, clap_seconds=2.0),
        dit=DiTStage(preset="tiny", edm_steps=4, consistency_steps=4, batch_size=4, warmup=2),
        eval=EvalStage(batches=2, batch_size=2, references=6, seconds=2.0, steps=2, split="all",
                       settings=("ctx", "ctx+clap_t"), text_contexts=1, pca=None)),  # spaces: musicnn too
}
