"""Table-1-style reports of `sideman eval`: Markdown, CSV and JSON.

Rows are conditioning settings (per variant in comparison mode) and bounds; columns are
KD, FAD, Cov, Den, APA, CS_AA, CS_TA, each the mean and std (ddof 0) over batches
(`distribution_metrics.MeanStd`). A metric that does not apply to a row (APA without
context, CS_AA of the real bound) is empty in the CSV and '-' in Markdown. Comparison
reports add 's/s': wall seconds of generation (CLAP condition + sampling + decoding,
after a warm-up) per second of generated audio.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from sideman.data.files import atomic_write
from sideman.evaluation import eval_notes
from sideman.evaluation.distribution_metrics import MeanStd

METRICS = ("kd", "fad", "coverage", "density", "apa", "cs_aa", "cs_ta")
HEADERS = {"kd": "KD", "fad": "FAD", "coverage": "Cov", "density": "Den", "apa": "APA",
           "cs_aa": "CS_AA", "cs_ta": "CS_TA"}
TIME_HEADER = "s/s"
FILES = {"markdown": "report.md", "csv": "report.csv", "json": "results.json", "notes": "notes.csv"}


@dataclass(frozen=True)
class RowResult:
    """One row: label, variant name ('' for bounds), setting or bound id, {metric: MeanStd},
    and wall seconds per generated second (None for bounds)."""

    label: str
    variant: str
    setting: str
    metrics: dict[str, MeanStd]
    seconds_per_second: float | None = None


def format_value(value: float) -> str:
    """Three decimals, or three significant digits in e-notation below 0.01 in size."""
    if value == 0 or 0.01 <= abs(value) < 1e5:
        return f"{value:.3f}"
    return f"{value:.2e}"


def _cell(stats: MeanStd | None) -> str:
    return "-" if stats is None else f"{format_value(stats.mean)} ± {format_value(stats.std)}"


@dataclass
class Report:
    """The rows, the run's identity (protocol, data, embedder, ...), notes, and whether
    it compares variants (which adds the time column)."""

    rows: list[RowResult]
    meta: dict
    notes: list[str]
    compare: bool = False
    note_rows: list | None = None  # evaluation.eval_notes.NoteRow per row, when stems were transcribed

    def columns(self) -> list[str]:
        return [HEADERS[m] for m in METRICS] + ([TIME_HEADER] if self.compare else [])

    def markdown(self) -> str:
        """A Markdown table (mean ± std over batches), with the protocol and notes."""
        cfg = self.meta["config"]
        proto = cfg["protocol"]
        head = ["inputs"] + self.columns()
        lines = [eval_notes.markdown(self.note_rows)] if self.note_rows else []
        lines += [f"Embedding metrics: mean ± std over {proto['n_batches']} batches of {proto['batch_size']} "
                 f"candidates against {self.meta['n_ref']} references; split '{cfg['split']}', "
                 f"{cfg['seconds']:g} s windows, seed {cfg['seed']}; embedder {self.meta['embedder']}.",
                 "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [row.label] + [_cell(row.metrics.get(m)) for m in METRICS]
            if self.compare:
                cells.append("-" if row.seconds_per_second is None else f"{row.seconds_per_second:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        for space in self.spaces():
            names = [m for m in METRICS if any(f"{space}:{m}" in r.metrics for r in self.rows)]
            lines += ["", f"The same in the {space} embedding space:", "",
                      "| inputs | " + " | ".join(HEADERS[m] for m in names) + " |", "|" + "---|" * (len(names) + 1)]
            lines += ["| " + " | ".join([r.label] + [_cell(r.metrics.get(f"{space}:{m}")) for m in names]) + " |"
                      for r in self.rows]
        if proto.get("pca"):
            lines += ["", f"KD, FAD, Density, Coverage and APA are computed in the top {proto['pca']} principal "
                      "axes of the references' embeddings (stems; context + stem mixes)."]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def spaces(self) -> list[str]:
        """The extra embedding spaces of the rows' metrics ('musicnn' of 'musicnn:fad')."""
        return sorted({k.split(":")[0] for r in self.rows for k in r.metrics if ":" in k})

    def csv(self) -> str:
        """One line per row: label, variant, setting, <metric>_mean, <metric>_std ...
        (6 significant digits; empty when not applicable), then seconds_per_second."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        header = ["inputs", "variant", "setting"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
        writer.writerow(header + (["seconds_per_second"] if self.compare else []))
        for row in self.rows:
            values = []
            for m in METRICS:
                stats = row.metrics.get(m)
                values += ["", ""] if stats is None else [f"{stats.mean:.6g}", f"{stats.std:.6g}"]
            if self.compare:
                values.append("" if row.seconds_per_second is None else f"{row.seconds_per_second:.6g}")
            writer.writerow([row.label, row.variant, row.setting] + values)
        return buf.getvalue()

    def as_json(self) -> dict:
        """Everything, with the per-batch values of every metric."""
        rows = [{"inputs": r.label, "variant": r.variant, "setting": r.setting,
                 "seconds_per_second": r.seconds_per_second,
                 "metrics": {m: {"mean": s.mean, "std": s.std, "batches": list(s.values)}
                             for m, s in r.metrics.items()}} for r in self.rows]
        out = {"meta": self.meta, "notes": self.notes, "rows": rows}
        if self.note_rows:
            out["note_rows"] = eval_notes.to_json(self.note_rows)
        return out

    def write(self, out: Path) -> dict[str, Path]:
        """Write report.md, report.csv, results.json (and notes.csv) into `out`; returns their paths."""
        out = Path(out)
        texts = {"markdown": self.markdown(), "csv": self.csv(),
                 "json": json.dumps(self.as_json(), indent=1, allow_nan=True)}
        if self.note_rows:
            texts["notes"] = eval_notes.to_csv(self.note_rows)
        paths = {}
        for kind, text in texts.items():
            paths[kind] = out / FILES[kind]
            atomic_write(paths[kind], text.encode())
        return paths


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a report.csv as dicts (header -> cell)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False
