"""The note-level side of `sideman eval` (see sideman.evaluation.notes): every candidate
stem of every row and every candidate context is transcribed by basic-pitch, and each
row is summarised by note activity, harmonic fit, register and rhythmic fit, each with a
95% bootstrap interval, overall and per role (the target stem's name: bass, keys, ...).

Cached units (beside the embedding units of evaluation.evaluate):
``notes/context_NNN.npz``: batch NNN's contexts (pitch-class histograms, onsets, lengths,
roles); the stems' notes ride in the row units ``rows/<row>/batch_NNN.npz``
(``notes``, ``note_offsets``). Figures are computed from those when the report is made.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from sideman.evaluation.notes import FIGURES, ContextNotes, Interval, Transcriber, bootstrap, stem_figures
from sideman.evaluation.eval_config import SAMPLE_RATE

TAG_SHIFTS, TAG_BOOT = 7, 8
# Roles whose stems have pitch; drums are reported but left out of the pitched summaries.
UNPITCHED = {"drums", "percussion"}
COLUMNS = {  # figure -> (header, what it is)
    "note_seconds": ("note-s/10s", "transcribed note-seconds per 10 s (pitched roles)"),
    "in_profile": ("in key", "share of the stem's note-time in the context's pitch-class profile"),
    "pc_correlation": ("PC corr", "correlation of the stem's and the context's pitch-class histograms"),
    "rhythm": ("onsets on context", "share of the stem's onsets within 50 ms of a context onset"),
    "rhythm_shifted": ("same, shifted", "the same at random time shifts of the stem (chance)"),
}


def pack_notes(per_item: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Ragged note arrays [(K_i, 4)] as notes (sum K_i, 4) and note_offsets (B + 1,)."""
    offsets = np.cumsum([0] + [len(n) for n in per_item])
    notes = np.concatenate(per_item) if per_item else np.zeros((0, 4))
    return {"notes": notes.reshape(-1, 4), "note_offsets": offsets}


def unpack(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


class NoteSide:
    """Transcribes contexts and stems for an `Evaluation`, and turns them into figures."""

    def __init__(self, transcriber: Transcriber, workspace, seed: int):
        self.transcriber = transcriber
        self.ws = workspace
        self.seed = seed

    def stem_notes(self, stems: list[np.ndarray]) -> list[np.ndarray]:
        """Notes (K_i, 4) of each candidate stem (2, N)."""
        return [self.transcriber.transcribe(s, SAMPLE_RATE) for s in stems]

    def contexts(self, b: int, pairs) -> tuple[list[ContextNotes], np.ndarray, bool]:
        """Batch b's contexts and roles (B,), from the cache or transcribed (and cached);
        `pairs()` gives the batch's pairs when needed; the flag says whether they were
        computed now."""
        rel = f"notes/context_{b:03d}.npz"
        cached = self.ws.load_arrays(rel)
        if cached is None:
            pairs = pairs()
            ctx = [ContextNotes.of(self.transcriber, p.context, SAMPLE_RATE) for p in pairs]
            onsets = pack_notes([np.repeat(c.onsets[:, None], 4, axis=1) for c in ctx])
            cached = {"histograms": np.stack([c.histogram for c in ctx]),
                      "onsets": onsets["notes"][:, 0], "onset_offsets": onsets["note_offsets"],
                      "durations": np.array([c.duration for c in ctx]),
                      "roles": np.array([p.target_stem for p in pairs])}
            self.ws.save_arrays(rel, **cached)
            fresh = True
        else:
            fresh = False
        ctx = [ContextNotes(h, o, float(d)) for h, o, d in
               zip(cached["histograms"], unpack(cached["onsets"], cached["onset_offsets"]), cached["durations"])]
        return ctx, cached["roles"], fresh

    def figures(self, unit: dict[str, np.ndarray], contexts: list[ContextNotes], first: int) -> dict[str, np.ndarray]:
        """{figure: (B,)} of a row x batch unit's stems against their contexts; `first` is
        the batch's first candidate index (it seeds the random shifts)."""
        from sideman.evaluation.eval_engines import derive_seed

        per = [stem_figures(n, c, derive_seed(self.seed, TAG_SHIFTS, first + i))
               for i, (n, c) in enumerate(zip(unpack(unit["notes"], unit["note_offsets"]), contexts))]
        return {f: np.array([p[f] for p in per]) for f in FIGURES}


# ------------------------------------------------------------------- report


@dataclass(frozen=True)
class NoteRow:
    """One row's note figures: overall {figure: Interval} over pitched-role stems, and per
    role {role: {'note_seconds', 'median_pitch': Interval}}."""

    label: str
    overall: dict[str, Interval]
    roles: dict[str, dict[str, Interval]]


def summarise(label: str, figures: dict[str, np.ndarray], roles: np.ndarray, seed: int) -> NoteRow:
    """A NoteRow from per-candidate figures (N,) and roles (N,)."""
    from sideman.evaluation.eval_engines import derive_seed

    pitched = np.array([r not in UNPITCHED for r in roles])
    overall = {f: bootstrap(figures[f][pitched], derive_seed(seed, TAG_BOOT, i))
               for i, f in enumerate(COLUMNS)}
    per_role = {}
    for j, role in enumerate(sorted(set(roles.tolist()))):
        mask = roles == role
        per_role[role] = {"note_seconds": bootstrap(figures["note_seconds"][mask], derive_seed(seed, TAG_BOOT, 100 + j)),
                          "median_pitch": bootstrap(figures["median_pitch"][mask], derive_seed(seed, TAG_BOOT, 200 + j),
                                                    statistic=np.median)}
    return NoteRow(label, overall, per_role)


def markdown(rows: list[NoteRow]) -> str:
    """Two tables: the overall figures, then note activity and register per role."""
    lines = ["Notes (basic-pitch transcriptions; mean [95% bootstrap interval], n stems in the last column):", "",
             "| inputs | " + " | ".join(h for h, _ in COLUMNS.values()) + " | n |",
             "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        n = r.overall["note_seconds"].n
        lines.append(f"| {r.label} | " + " | ".join(str(r.overall[f]) for f in COLUMNS) + f" | {n} |")
    roles = sorted({role for r in rows for role in r.roles})
    lines += ["", "Per role: note-seconds per 10 s / median MIDI pitch (median over stems):", "",
              "| inputs | " + " | ".join(roles) + " |", "|" + "---|" * (len(roles) + 1)]
    for r in rows:
        cells = []
        for role in roles:
            got = r.roles.get(role)
            cells.append("-" if got is None else f"{got['note_seconds']} / {got['median_pitch']}")
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {h}: {what}" for h, what in COLUMNS.values()]
    lines.append("- in key: the profile is the fewest pitch classes holding 95% of the context's note-time.")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[NoteRow]) -> str:
    """One line per (row, scope, figure): label, scope ('all' or a role), figure, mean, low, high, n."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["inputs", "scope", "figure", "mean", "low", "high", "n"])
    for r in rows:
        items = [("all", f, iv) for f, iv in r.overall.items()]
        items += [(role, f, iv) for role, figs in r.roles.items() for f, iv in figs.items()]
        for scope, f, iv in items:
            w.writerow([r.label, scope, f] + [f"{v:.6g}" for v in (iv.mean, iv.low, iv.high)] + [iv.n])
    return buf.getvalue()


def to_json(rows: list[NoteRow]) -> list[dict]:
    iv = lambda i: {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}  # noqa: E731
    return [{"inputs": r.label, "overall": {f: iv(v) for f, v in r.overall.items()},
             "roles": {role: {f: iv(v) for f, v in figs.items()} for role, figs in r.roles.items()}}
            for r in rows]
