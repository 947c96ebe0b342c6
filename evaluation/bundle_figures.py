"""The figures a bundle carries in its manifest, so that `sideman demo` can say what to
expect of it: a summary of `sideman eval` (basic-pitch note figures with their real and
random bounds, musicnn APA) and of the text-control check, on held-out songs.

    figures = summarise(EVAL_DIR, text_control=TEXT_CONTROL_JSON, speed=SPEED_JSON)
    -> {"inputs": "ctx+clap_b", "songs": 16, "stems": 213, "data": ...,
        "note_seconds": {"model": 1.24, "real": 21.6, "random": 17.9},   # per 10 s
        "in_key": {...}, "rhythm": {...},                                # share, 0..1
        "median_pitch": {"bass": {"model": 40, "real": 43.5}, ...},      # MIDI
        "apa_musicnn": 0.0, "text_role_control": 0.31, "rtf": 0.05}

Every value is a mean over held-out stems; a figure the evaluation did not measure is left
out rather than guessed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

REAL, RANDOM = "real", "random pairing"
INPUTS = "ctx+clap_b"  # the plugin's path: context plus a typed prompt through the bridge


def _mean(rows: dict, inputs: str, figure: str) -> float | None:
    value = rows.get(inputs, {}).get("overall", {}).get(figure, {}).get("mean")
    return None if value is None else round(float(value), 4)


def summarise(eval_dir: str | os.PathLike, text_control: str | os.PathLike | None = None,
              speed: str | os.PathLike | None = None, inputs: str = INPUTS) -> dict:
    """The manifest's "figures" from an eval folder (results.json) and optional
    text_control.json and speed.json."""
    eval_dir = Path(eval_dir)
    try:
        results = json.loads((eval_dir / "results.json").read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{eval_dir} holds no results.json (run `sideman eval` into it)") from None
    notes = {r["inputs"]: r for r in results.get("note_rows", [])}
    if inputs not in notes:
        raise ValueError(f"{eval_dir}: no note figures for '{inputs}' (it has: {', '.join(notes) or 'none'})")
    meta = results["meta"]
    out: dict = {"inputs": inputs, "data": Path(meta["data"]).name, "split": meta["config"]["split"],
                 "songs": len(meta.get("songs", [])),
                 "stems": notes[inputs]["overall"]["note_seconds"]["n"]}
    for key, figure in (("note_seconds", "note_seconds"), ("in_key", "in_profile"), ("rhythm", "rhythm")):
        out[key] = {name: _mean(notes, row, figure) for name, row in
                    (("model", inputs), ("real", REAL), ("random", RANDOM)) if _mean(notes, row, figure) is not None}
    pitch = {}
    for role, figures in notes[inputs].get("roles", {}).items():
        real = notes.get(REAL, {}).get("roles", {}).get(role, {}).get("median_pitch", {}).get("mean")
        model = figures.get("median_pitch", {}).get("mean")
        if model is not None and real is not None:
            pitch[role] = {"model": float(model), "real": float(real)}
    out["median_pitch"] = pitch
    for row in results.get("rows", []):
        if row["inputs"] == inputs and "musicnn:apa" in row["metrics"]:
            out["apa_musicnn"] = round(float(row["metrics"]["musicnn:apa"]["mean"]), 4)
    if text_control is not None:
        control = json.loads(Path(text_control).read_text())
        key = "clap_b" if "clap_b" in control else next(k for k in control if k.startswith("clap"))
        out["text_role_control"] = round(float(control[key]["accuracy"]), 4)
    if speed is not None:
        out["rtf"] = round(float(json.loads(Path(speed).read_text())["rtf"]), 4)
    return out
