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


@dataclass(frozen=True)
class System:
    """A codec under test: reconstruct audio (2, N) -> audio (2, N); `encode` audio (2, N) ->
    latents (C, T) when it has latents (their statistics are reported)."""

    reconstruct: Callable[[np.ndarray], np.ndarray]
    encode: Callable[[np.ndarray], np.ndarray] | None = None


def spectral_codec_system(checkpoint: Path, weights: str = "ema") -> System:
    """A spectral codec checkpoint (its EMA or current weights, training.codec_training.load_codec), in torch."""
    import torch

    from sideman.training.codec_training import load_codec

    model = load_codec(checkpoint, weights)

    @torch.no_grad()
    def encode(audio: np.ndarray) -> np.ndarray:
        return model.encode(torch.from_numpy(audio)[None])[0].numpy()

    @torch.no_grad()
    def reconstruct(audio: np.ndarray) -> np.ndarray:
        return model.decode(model.encode(torch.from_numpy(audio)[None]))[0].numpy()
    return System(reconstruct, encode)


def band_codec_system(pool: int = 4) -> System:
    """The band codec (numerics.band_codec, deterministic) with `pool` STFT frames per latent."""
    from sideman.numerics.band_codec import BandCodec, BandCodecConfig

    codec = BandCodec(BandCodecConfig(pool=pool))
    return System(lambda audio: codec.decode(codec.encode(audio[None]), length=audio.shape[-1])[0],
                  lambda audio: codec.encode(audio[None])[0])


def bundle_system(bundle: Path) -> System:
    """A bundle's autoencoder (its decoding settings), on onnxruntime."""
    from sideman.plugin_host.engine import OnnxEngine

    engine = OnnxEngine(bundle)
    return System(lambda audio: engine.reconstruct(audio, seed=0), lambda audio: engine.codec.encode(audio[None])[0])


def resample_system(low_rate: int = 24_000) -> System:
    """A 48 -> low_rate -> 48 kHz round trip (soxr VHQ): a reference point that keeps every
    note below low_rate / 2."""
    from sideman.evaluation.ae_eval import resample_roundtrip

    return System(lambda audio: resample_roundtrip(audio, low_rate))


def phase_oracle_system(n_fft: int = 2048, hop: int = 512, from_peaks: bool = True) -> System:
    """The spectral codec's ceiling: the input's own STFT magnitudes, decoded as the codec
    decodes (phase from the magnitudes' peaks, numerics.phase), or with from_peaks False
    with the true instantaneous frequencies (what no decoder knows: the phase model's own
    ceiling). What a perfect encoder and decoder of this design would give."""
    from sideman.numerics.phase import audio_from_magnitude, instantaneous_deviation, integrate_phase
    from sideman.numerics.spectral import istft, stft

    def reconstruct(audio: np.ndarray) -> np.ndarray:
        spec = stft(audio, n_fft, hop)
        if from_peaks:
            return audio_from_magnitude(np.abs(spec), n_fft, hop, audio.shape[-1]).astype(np.float32)
        phase = integrate_phase(instantaneous_deviation(spec, n_fft, hop), n_fft, hop)
        return istft(np.abs(spec) * np.exp(1j * phase), n_fft, hop, audio.shape[-1]).astype(np.float32)
    return System(reconstruct)


def latent_statistics(encode: Callable[[np.ndarray], np.ndarray], clips: list[Clip]) -> dict[str, float]:
    """What the DiT will be given: latents of `clips`, pooled. std and mean over all values;
    channel_std_min/max; beyond_0.9: share of values with |z| > 0.9 (the tanh bound);
    lag1: mean over clips and channels of the correlation of z[t] with z[t+1] (smooth in
    time near 1); step_ratio: mean |z[t+1] - z[t]| over the mean |z - channel mean|."""
    latents = [np.asarray(encode(c.audio), np.float64) for c in clips]
    pooled = np.concatenate(latents, axis=1)
    centred = [z - pooled.mean(1, keepdims=True) for z in latents]
    lag1 = [np.sum(z[:, 1:] * z[:, :-1], 1) / np.sqrt(np.sum(z[:, 1:] ** 2, 1) * np.sum(z[:, :-1] ** 2, 1) + 1e-12)
            for z in centred if z.shape[1] > 2]
    steps = np.concatenate([np.abs(np.diff(z, axis=1)).ravel() for z in latents])
    return {"channels": int(pooled.shape[0]), "frames_per_clip": float(np.mean([z.shape[1] for z in latents])),
            "mean": float(pooled.mean()), "std": float(pooled.std()),
            "channel_std_min": float(pooled.std(1).min()), "channel_std_max": float(pooled.std(1).max()),
            "beyond_0.9": float(np.mean(np.abs(pooled) > 0.9)), "lag1": float(np.mean(np.concatenate(lag1))),
            "step_ratio": float(steps.mean() / max(np.mean(np.abs(np.concatenate(centred, axis=1))), 1e-12))}


def evaluate_codecs(systems: dict[str, System], clips: list[Clip], seed: int = 0,
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
            rec = system.reconstruct(clip.audio)
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
        if system.encode is not None:
            summary["latents"] = latent_statistics(system.encode, clips)
        results[name] = summary
    bar.close()
    return results


def to_json(results: dict[str, dict]) -> dict:
    def value(kind, v):
        if kind == "latents" or not isinstance(v, dict):
            return v
        return {f: {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n} for f, i in v.items()}
    return {name: {kind: value(kind, v) for kind, v in summary.items()} for name, summary in results.items()}


def example_pictures(system: System, clips: list[Clip], out: Path, name: str, per_kind: int = 2) -> list[Path]:
    """OUT/codec_<kind>.png: original and reconstruction of the first clips of each kind,
    with their basic-pitch notes over log-frequency spectrograms."""
    from sideman.evaluation.note_plots import Panel, plot_examples

    transcriber = Transcriber()
    paths = []
    for kind in dict.fromkeys(c.kind for c in clips):
        rows = []
        for clip in [c for c in clips if c.kind == kind][:per_kind]:
            rec = system.reconstruct(clip.audio)
            rows.append([Panel(f"{clip.song} {kind}: original", clip.audio, transcriber.transcribe(clip.audio)),
                         Panel(f"{name}", rec, transcriber.transcribe(rec))])
        paths.append(plot_examples(rows, Path(out) / f"codec_{kind}.png", f"{kind}: original vs {name}"))
    return paths


def markdown(results: dict[str, dict]) -> str:
    lines = ["| system | clips | note-F1 | note-s share | log-mel L1 | MR-STFT | s per clip (encode + decode) |",
             "|---|---|---|---|---|---|---|"]
    for name, summary in results.items():
        for kind in ("pitched", "mix", *PITCHED):
            if kind in summary:
                f = summary[kind]
                lines.append(f"| {name} | {kind} | {f['note_f1']} | {f['note_share']} | {f['log_mel_l1']} | "
                             f"{f['mrstft']} | {summary['seconds_per_clip']:.2f} |")
    latent = {name: summary["latents"] for name, summary in results.items() if "latents" in summary}
    if latent:
        keys = ["channels", "frames_per_clip", "mean", "std", "channel_std_min", "channel_std_max", "beyond_0.9",
                "lag1", "step_ratio"]
        lines += ["", "Latents (what the DiT is given; lag1 near 1 and a small step_ratio: smooth in time):", "",
                  "| system | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, stats in latent.items():
            lines.append(f"| {name} | " + " | ".join(f"{stats[k]:.3g}" for k in keys) + " |")
    return "\n".join(lines)
