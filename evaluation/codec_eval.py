"""Does a codec keep the notes? Reconstructions of held-out stems and mixes, transcribed.

For each system (any function audio (2, N) -> audio (2, N): a spectral codec checkpoint,
a bundle's autoencoder through the ONNX engine, a 48->24->48 kHz round trip) and each
clip, the original and the reconstruction are transcribed by basic-pitch and compared:

- note-F1: onsets within 50 ms, pitch within a quarter tone, offsets ignored;
- note-seconds of the reconstruction as a share of the original's;
- log-mel L1 (log10, 128 mels) and the multi-resolution STFT distance (evaluation.ae_eval).

Clips: per pitched role, ``per_role`` 10-s windows of validation songs where that stem is
loudest-active, plus as many full mixes, drawn with a fixed seed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sideman.evaluation.notes import Transcriber, bootstrap, note_f1, note_seconds

SAMPLE_RATE = 48_000
PITCHED = ("bass", "keys", "guitar", "pads", "lead")


@dataclass(frozen=True)
class Clip:
    kind: str  # a role or 'mix'
    song: str
    start: int
    audio: np.ndarray  # (2, N)


def held_out_clips(data_dir: Path, per_role: int = 6, seconds: float = 10.0, seed: int = 0) -> list[Clip]:
    """`per_role` clips per pitched role and as many mixes, from validation songs, each
    window chosen at random among those where the stem (or the mix) is active."""
    from sideman.data.audio import load_audio
    from sideman.data.layouts import read_multitrack
    from sideman.data.multitrack import BLOCK
    from sideman.data.pairs import song_split

    data = read_multitrack(data_dir, progress=False)
    songs = [s for s in data.songs if song_split(s.song_id, 0.1) == "validation"]
    n = int(round(seconds * SAMPLE_RATE)) // BLOCK * BLOCK
    rng = np.random.default_rng(seed)
    clips = []
    for kind in (*PITCHED, "mix"):
        candidates = [(song, stem) for song in songs for stem in song.stems
                      if stem.role == kind or (kind == "mix" and stem is song.stems[0])]
        for k in rng.permutation(len(candidates))[:per_role]:
            song, stem = candidates[k]
            stems = song.stems if kind == "mix" else [stem]
            blocks = n // BLOCK
            level = sum(s.activity[:song.frames // BLOCK] for s in stems)
            active = np.convolve(level > 10 ** (-45 / 10), np.ones(blocks), "valid")
            starts = np.flatnonzero(active >= 0.8 * blocks)
            if len(starts) == 0:
                continue
            start = int(rng.choice(starts)) * BLOCK
            audio = sum(load_audio(s.path, start, n) for s in stems).astype(np.float32)
            clips.append(Clip(kind, song.song_id, start, audio))
    return clips


def spectral_codec_system(checkpoint: Path) -> Callable[[np.ndarray], np.ndarray]:
    """audio -> audio through a spectral codec checkpoint (EMA weights), in torch."""
    import torch

    from sideman.training.codec_training import load_codec

    model = load_codec(checkpoint)

    def run(audio: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.decode(model.encode(torch.from_numpy(audio)[None]))[0].numpy()
    return run


def bundle_system(bundle: Path) -> Callable[[np.ndarray], np.ndarray]:
    """audio -> audio through a bundle's autoencoder (its decoding settings), on onnxruntime."""
    from sideman.plugin_host.engine import OnnxEngine

    engine = OnnxEngine(bundle)
    return lambda audio: engine.reconstruct(audio, seed=0)


def resample_system(low_rate: int = 24_000) -> Callable[[np.ndarray], np.ndarray]:
    """audio -> audio through a 48 -> low_rate -> 48 kHz round trip (soxr VHQ): a reference
    point that keeps every note below low_rate / 2."""
    from sideman.evaluation.ae_eval import resample_roundtrip

    return lambda audio: resample_roundtrip(audio, low_rate)


def evaluate_codecs(systems: dict[str, Callable], clips: list[Clip], seed: int = 0,
                    progress: bool = True) -> dict[str, dict]:
    """{system: {kind: {figure: Interval}, 'seconds_per_clip': float}} over `clips`.

    Figures: note_f1, note_share (reconstruction note-seconds / original's), log_mel_l1,
    mrstft; kinds: 'pitched' (all pitched roles), each role, 'mix'."""
    from sideman.evaluation.ae_eval import log_mel_l1, multires_stft_distance

    from tqdm import tqdm

    transcriber = Transcriber()
    originals = [transcriber.transcribe(c.audio) for c in clips]
    results = {}
    bar = tqdm(total=len(systems) * len(clips), desc="codec eval", unit="clip", disable=not progress)
    for name, system in systems.items():
        rows, wall = [], 0.0
        for clip, ref in zip(clips, originals):
            t0 = time.perf_counter()
            rec = system(clip.audio)
            wall += time.perf_counter() - t0
            est = transcriber.transcribe(rec)
            share = note_seconds(est) / note_seconds(ref) if note_seconds(ref) > 0 else float("nan")
            rows.append({"kind": clip.kind, "note_f1": note_f1(ref, est), "note_share": share,
                         "log_mel_l1": log_mel_l1(clip.audio, rec), "mrstft": multires_stft_distance(clip.audio, rec)})
            bar.update()
        summary = {}
        for kind in ("pitched", *PITCHED, "mix"):
            chosen = [r for r in rows if r["kind"] == kind or (kind == "pitched" and r["kind"] in PITCHED)]
            if chosen:
                summary[kind] = {f: bootstrap([r[f] for r in chosen], seed) for f in
                                 ("note_f1", "note_share", "log_mel_l1", "mrstft")}
        summary["seconds_per_clip"] = wall / max(1, len(clips))
        results[name] = summary
    bar.close()
    return results


def to_json(results: dict[str, dict]) -> dict:
    return {name: {kind: (v if not isinstance(v, dict) else
                          {f: {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n} for f, i in v.items()})
                   for kind, v in summary.items()} for name, summary in results.items()}


def example_pictures(system: Callable, clips: list[Clip], out: Path, name: str, per_kind: int = 2) -> list[Path]:
    """OUT/codec_<kind>.png: original and reconstruction of the first clips of each kind,
    with their basic-pitch notes over log-frequency spectrograms."""
    from sideman.evaluation.note_plots import Panel, plot_examples

    transcriber = Transcriber()
    paths = []
    for kind in dict.fromkeys(c.kind for c in clips):
        rows = []
        for clip in [c for c in clips if c.kind == kind][:per_kind]:
            rec = system(clip.audio)
            rows.append([Panel(f"{clip.song} {kind}: original", clip.audio, transcriber.transcribe(clip.audio)),
                         Panel(f"{name}", rec, transcriber.transcribe(rec))])
        paths.append(plot_examples(rows, Path(out) / f"codec_{kind}.png", f"{kind}: original vs {name}"))
    return paths


def markdown(results: dict[str, dict]) -> str:
    lines = ["| system | clips | note-F1 | note-s share | log-mel L1 | MR-STFT | s per clip |",
             "|---|---|---|---|---|---|---|"]
    for name, summary in results.items():
        for kind in ("pitched", "mix", *PITCHED):
            if kind in summary:
                f = summary[kind]
                lines.append(f"| {name} | {kind} | {f['note_f1']} | {f['note_share']} | {f['log_mel_l1']} | "
                             f"{f['mrstft']} | {summary['seconds_per_clip']:.2f} |")
    return "\n".join(lines)
