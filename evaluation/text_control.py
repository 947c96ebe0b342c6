"""Does a prompt naming an instrument role get that role? A classifier-free check.

For each instrument role and each of ``contexts`` held-out songs that have a stem of that
role, the context is the mix of the song's *other* stems over the ``seconds`` window
where the role's stem is loudest, and the bundle generates a stem from the context and
the role's prompt (:data:`ROLE_PROMPTS`). The generated stem's house-CLAP audio embedding
is then compared with the text embeddings of all the role prompts; the check passes when
the prompted role is the nearest. The same retrieval on the real stems of those windows
is the reference point (what the CLAP itself can tell apart), and on those stems encoded
and decoded by the bundle's autoencoder the ceiling its codec sets (``codec``).

Two conditionings are checked: ``clap_t`` (the raw text embedding, the paper's CLAP_T)
and ``clap_b`` (the text through the bridge, what the plugin does with a prompt).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sideman.data.audio import load_audio
from sideman.data.instruments import ROLES
from sideman.data.layouts import read_multitrack
from sideman.data.multitrack import BLOCK, Song
from sideman.data.pairs import song_split

SAMPLE_RATE = 48_000

ROLE_PROMPTS: dict[str, str] = {
    "drums": "drum kit groove",
    "bass": "bass line",
    "keys": "keyboard chords",
    "guitar": "guitar part",
    "pads": "sustained synth pad",
    "lead": "lead melody",
}
assert set(ROLE_PROMPTS) == set(ROLES)


@dataclass(frozen=True)
class Probe:
    """One generation of the check: a role's prompt over the other stems of a song."""

    song: Song
    role: str
    start: int  # sample


def loudest_window(song: Song, role: str, samples: int) -> int:
    """Start sample of the ``samples`` window (1-block steps) where ``role``'s stem is
    loudest."""
    stem = next(s for s in song.stems if s.role == role)
    blocks = max(1, samples // BLOCK)
    level = stem.activity[:song.frames // BLOCK]
    if len(level) <= blocks:
        return 0
    sums = np.convolve(level, np.ones(blocks), mode="valid")
    return int(np.argmax(sums)) * BLOCK


def probes(songs: list[Song], contexts: int, samples: int) -> list[Probe]:
    """Up to ``contexts`` probes per role from songs that have that role and at least one
    other stem, long enough for the window."""
    out = []
    for role in ROLES:
        usable = [s for s in songs if s.frames >= samples and len(s.stems) > 1
                  and any(st.role == role for st in s.stems)]
        out += [Probe(s, role, loudest_window(s, role, samples)) for s in usable[:contexts]]
    return out


def nearest_role(audio_emb: np.ndarray, prompt_emb: np.ndarray) -> list[str]:
    """Role of the nearest prompt (cosine) for each row of ``audio_emb (N, D)``."""
    return [ROLES[i] for i in np.argmax(audio_emb @ prompt_emb.T, axis=1)]


def _accuracy(probes_: list[Probe], predicted: list[str]) -> dict:
    per_role = {}
    for role in ROLES:
        hits = [p == q.role for q, p in zip(probes_, predicted) if q.role == role]
        if hits:
            per_role[role] = float(np.mean(hits))
    return {"accuracy": float(np.mean([p == q.role for q, p in zip(probes_, predicted)])),
            "per_role": per_role}


def _notes(transcriber, probes_: list[Probe], stems: list[np.ndarray]) -> dict:
    """Per role: mean transcribed note-seconds per 10 s and the median of the stems'
    duration-weighted median MIDI pitches (NaN without notes)."""
    from sideman.evaluation.notes import note_seconds, weighted_median

    per_role: dict[str, dict[str, list]] = {}
    for probe, stem in zip(probes_, stems):
        notes = transcriber.transcribe(stem, SAMPLE_RATE)
        got = per_role.setdefault(probe.role, {"note_seconds": [], "median_pitch": []})
        got["note_seconds"].append(note_seconds(notes) * 10.0 * SAMPLE_RATE / stem.shape[-1])
        got["median_pitch"].append(weighted_median(notes[:, 2], notes[:, 1] - notes[:, 0]))
    return {role: {"note_seconds": float(np.mean(v["note_seconds"])),
                   "median_pitch": float(np.nanmedian(v["median_pitch"])) if np.isfinite(v["median_pitch"]).any()
                   else float("nan")} for role, v in per_role.items()}


def text_control(engine, data_dir: str | Path, out_dir: str | Path | None = None,
                 contexts: int = 8, seconds: float = 10.0, steps: int = 5, split: str = "validation",
                 seed: int = 0, validation_fraction: float = 0.1, progress: bool = True,
                 transcriber=None) -> dict:
    """Run the check with an :class:`~sideman.plugin_host.engine.OnnxEngine`; returns
    (and writes ``out_dir/text_control.json``) the accuracy overall and per role for
    ``real`` stems, their ``codec`` reconstructions, ``clap_t`` and ``clap_b`` generations.
    With a basic-pitch `transcriber` (sideman.evaluation.notes) each of those also gets,
    per prompted role, its note activity and register (``notes``), so that a prompt for
    "bass line" can be seen to play low notes."""
    from sideman.plugin_host.engine_api import GenerationSettings
    from sideman.plugin_host.engine import Controls

    data = read_multitrack(data_dir, progress=progress)
    songs = [s for s in data.songs if split == "all" or song_split(s.song_id, validation_fraction) == split]
    samples = int(round(seconds * SAMPLE_RATE))
    chosen = probes(songs, contexts, samples)
    if not chosen:
        raise ValueError(f"no {split} song of {data_dir} has two stems and {seconds} s of audio")
    prompt_emb = engine.embed_text([ROLE_PROMPTS[r] for r in ROLES])
    conditionings = ["clap_t"] + (["clap_b"] if engine.bundle.has("bridge_step") else [])
    real, codec, generated = [], [], {c: [] for c in conditionings}
    bar = tqdm(total=len(chosen) * (2 + len(conditionings)), desc="text control", unit="stem",
               disable=not progress)
    for i, probe in enumerate(chosen):
        stems = {s.role: load_audio(s.path, probe.start, samples) for s in probe.song.stems}
        context = sum(a for r, a in stems.items() if r != probe.role)
        real.append(stems[probe.role])
        codec.append(engine.reconstruct(stems[probe.role], seed=seed + i))
        bar.update(2)
        text = prompt_emb[ROLES.index(probe.role)]
        for c in conditionings:
            clap = text if c == "clap_t" else engine.bridge(text, 1, seed + i)[0]
            generated[c].append(engine.generate(
                context, seconds, GenerationSettings(seed=seed + i, steps=steps),
                controls=Controls(clap_embedding=clap)))
            bar.update()
    bar.close()
    result = {"prompts": ROLE_PROMPTS, "probes": len(chosen), "seconds": seconds, "steps": steps,
              "split": split,
              "real": _accuracy(chosen, nearest_role(engine.embed_audio(real), prompt_emb)),
              "codec": _accuracy(chosen, nearest_role(engine.embed_audio(codec), prompt_emb))}
    for c in conditionings:
        result[c] = _accuracy(chosen, nearest_role(engine.embed_audio(generated[c]), prompt_emb))
    if transcriber is not None:
        for key, stems in [("real", real), ("codec", codec)] + list(generated.items()):
            result[key]["notes"] = _notes(transcriber, chosen, stems)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "text_control.json").write_text(json.dumps(result, indent=2))
    return result


def markdown(result: dict) -> str:
    """The check as a Markdown table (rows: real stems and each conditioning)."""
    roles = [r for r in ROLES if r in result["real"]["per_role"]]
    lines = ["| stems | all | " + " | ".join(roles) + " |", "|---|---|" + "---|" * len(roles)]
    for key, label in (("real", "real stems"), ("codec", "real via codec"), ("clap_t", "ctx+CLAP_T"),
                       ("clap_b", "ctx+CLAP_B")):
        if key in result:
            r = result[key]
            lines.append(f"| {label} | {r['accuracy']:.2f} | "
                         + " | ".join(f"{r['per_role'].get(x, float('nan')):.2f}" for x in roles) + " |")
    if "notes" in result["real"]:
        lines += ["", "Per prompted role: transcribed note-seconds per 10 s / median MIDI pitch (basic-pitch):", "",
                  "| stems | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
        for key, label in (("real", "real stems"), ("codec", "real via codec"), ("clap_t", "ctx+CLAP_T"),
                           ("clap_b", "ctx+CLAP_B")):
            if key in result:
                cells = [result[key]["notes"].get(x) for x in roles]
                lines.append(f"| {label} | " + " | ".join(
                    "-" if c is None else f"{c['note_seconds']:.1f} / {c['median_pitch']:.0f}" for c in cells) + " |")
    return "\n".join(lines)
