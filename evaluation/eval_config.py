"""What `sideman eval` measures and how: conditioning settings, bounds, the protocol
(batches and references), the run configuration and the variants to compare
(see evaluation.evaluate)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


SAMPLE_RATE = 48_000
CANDIDATE_EPOCH, REFERENCE_EPOCH, RANDOM_EPOCH = 0, 1, 2
TAG_GENERATE, TAG_NOISE, TAG_RANDOM, TAG_ANTI, TAG_KD, TAG_CODEC = 1, 2, 3, 4, 5, 6
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
CODEC = "codec"  # per-variant ceiling row: the real target stems through the bundle's autoencoder
CODEC_LABEL = "real via codec"
LEGEND = (
    "Inputs: ctx = the context mix; clap_a = audio CLAP of another segment of the target stem; "
    "clap_t = raw text CLAP of its caption; clap_b = that text through the bridge (CLAP_B); "
    "clap_a* = an unconditional bridge sample (CLAP_A*); uncond = nothing.",
    "Bounds: real = the real target stems; white noise at their loudness; random pairing = "
    "target stems of other songs. APA places each context + stem mix between the reference "
    "pairs' real mixes (1) and their mixes with stems of other songs (0).",
    "real via codec = the real target stems encoded and decoded by the bundle's autoencoder "
    "(its own decoding steps and mode): the best any generation through that codec can score.",
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
    k: the nearest-neighbour k of Density and Coverage; pca: compare embeddings in the
    top-`pca` principal subspace of the references (None: the full space), for sets not
    much larger than the embedding's dimension.
    """

    n_batches: int
    batch_size: int
    n_ref: int
    kd_subsets: int = 100
    kd_subset_size: int = 1000
    k: int = 5
    pca: int | None = None

    def check(self) -> None:
        if self.n_batches < 1 or self.batch_size < 2:
            raise ValueError("need at least 1 batch of at least 2 candidates")
        if self.n_ref <= self.k:
            raise ValueError(f"need more than k={self.k} references, got {self.n_ref}")
        if self.pca is not None and not 1 <= self.pca < min(self.n_ref, self.batch_size):
            raise ValueError(f"pca must be between 1 and the set sizes, got {self.pca}")


PRESETS = {
    "paper": Protocol(5, 1000, 5000),
    "quick": Protocol(3, 200, 1000, kd_subsets=50, kd_subset_size=200),
    "tiny": Protocol(2, 6, 16, kd_subsets=10, kd_subset_size=6),
}


@dataclass(frozen=True)
class EvalConfig:
    """Everything besides the variants that decides the numbers of a report.

    seconds: window and generation length (s); clap_seconds: CLAP segment length (s,
    default = seconds); chunk: items generated/embedded per call; bounds: add the rows;
    notes: transcribe every stem and context with basic-pitch (sideman.evaluation.notes);
    spaces: extra embedding spaces for KD, FAD, Density, Coverage and APA ('musicnn').
    """

    protocol: Protocol
    seconds: float = 10.0
    clap_seconds: float | None = None
    seed: int = 0
    split: str = "validation"
    layout: str = "auto"
    chunk: int = 16
    bounds: bool = True
    notes: bool = True
    spaces: tuple[str, ...] = ()


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
    def is_codec(self) -> bool:
        return self.setting == CODEC

    @property
    def has_context(self) -> bool:
        return self.is_bound or self.is_codec or SETTINGS[self.setting].context


def _slug(setting: str) -> str:
    return setting.replace("+", "_").replace("*", "_star")


def build_rows(variants: Sequence[Variant], settings: Sequence[str], bounds: bool) -> list[Row]:
    """Rows in table order: each variant's settings (its own or `settings`), then, with
    `bounds`, each variant's codec ceiling and the bounds.

    With several variants labels read 'NAME: setting'."""
    rows = []
    named = (lambda v, s: f"{v.name}: {s}") if len(variants) > 1 else (lambda v, s: s)
    for v in variants:
        for s in v.settings or settings:
            rows.append(Row(f"{v.name}/{_slug(s)}", named(v, s), s, v))
    if bounds:
        rows += [Row(f"{v.name}/{CODEC}", named(v, CODEC_LABEL), CODEC, v) for v in variants]
        rows += [Row(f"bounds/{b}", label, b) for b, label in BOUNDS.items()]
    return rows
