"""The synthetic multitrack corpus: procedural songs rendered per instrument, Slakh-style.

Layout written by `render_corpus` (one folder per song, written atomically):

    OUT/corpus.json                  corpus settings and the list of songs
    OUT/song_00000/metadata.json     tempo, key, meter, sections, stems with tags
    OUT/song_00000/song.mid          the arrangement, one track per role
    OUT/song_00000/mix.flac          the sum of the stems, 48 kHz stereo 24-bit
    OUT/song_00000/stems/<role>.flac one stem per role, 48 kHz stereo 24-bit
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt
from tqdm import tqdm

from sideman.data.files import atomic_write
from sideman.data.arrangement import Song, chord_name, generate_song
from sideman.data.fluidsynth import RenderError, find_fluidsynth, find_soundfont, render_midi
from sideman.data.midi_io import write_midi
from sideman.data.tags import caption, stem_tags

CORPUS_FORMAT = "sideman-corpus"
CORPUS_VERSION = 1
SAMPLE_RATE = 48000
PEAK_TARGET = 10 ** (-1.0 / 20)  # mix peak after normalisation: -1 dBFS
FADE_SECONDS = 0.02
SILENCE_DB = -60.0

__all__ = ["CorpusReport", "RenderError", "RenderSettings", "render_corpus", "render_song"]


@dataclass
class RenderSettings:
    """How songs are rendered: length in seconds, soundfont, FluidSynth gain, sample rate."""

    seconds: float
    soundfont: Path
    gain: float = 0.5
    sample_rate: int = SAMPLE_RATE


@dataclass
class CorpusReport:
    """What `render_corpus` did: songs written, skipped (already there) and failed."""

    out: Path
    rendered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds_of_audio: float = 0.0
    wall_seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of song audio rendered per second of wall time."""
        return self.seconds_of_audio / self.wall_seconds if self.wall_seconds else 0.0


def song_seed(seed: int, index: int) -> tuple[int, int]:
    """Song `index` of a corpus rendered with `seed`: independent of song count and workers."""
    return (int(seed), int(index))


def song_name(index: int) -> str:
    return f"song_{index:05d}"


def _high_pass(audio: np.ndarray, sr: int, cutoff: float = 20.0) -> np.ndarray:
    """Remove DC and sub-sonic rumble (some GM presets carry a DC offset): 2nd-order Butterworth."""
    sos = butter(2, cutoff, btype="highpass", fs=sr, output="sos")
    return sosfilt(sos, audio, axis=1).astype(np.float32)


def _fit_length(audio: np.ndarray, samples: int, sr: int) -> np.ndarray:
    """Trim or zero-pad to `samples`, with a short fade-out so the cut does not click."""
    out = np.zeros((audio.shape[0], samples), dtype=np.float32)
    n = min(samples, audio.shape[1])
    out[:, :n] = audio[:, :n]
    fade = min(samples, int(FADE_SECONDS * sr))
    out[:, samples - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-12)))


def _section_table(song: Song) -> list[dict]:
    spb = song.seconds_per_beat * song.beats_per_bar
    return [{"name": s.name, "start_bar": s.start_bar, "bars": s.bars,
             "start_seconds": round(s.start_bar * spb, 4),
             "end_seconds": round((s.start_bar + s.bars) * spb, 4),
             "chords": [chord_name(song.key, d) for d in s.degrees], "roles": list(s.roles)}
            for s in song.sections]


def render_song(song: Song, song_dir: Path, settings: RenderSettings) -> dict:
    """Render every part of `song` into `song_dir` atomically; returns the metadata dict.

    The stems are rendered one by one through a temporary folder next to `song_dir`, scaled by
    one common gain so that the mix peaks at -1 dBFS, and the folder is renamed into place only
    when everything is written. A part with no note inside the rendered length (its sections
    all come later) is left out of the song; a stem that still renders silent is an error
    (nothing is kept), as is a song left with fewer than two parts.
    """
    song_dir = Path(song_dir)
    samples = int(round(settings.seconds * settings.sample_rate))
    end_beat = settings.seconds / song.seconds_per_beat
    playing = {r: p for r, p in song.parts.items() if any(n.start < end_beat for n in p.notes)}
    if len(playing) < 2:
        raise RuntimeError(f"only {len(playing)} part(s) play in the first {settings.seconds:g} s")
    song = replace(song, parts=playing)
    tmp = Path(tempfile.mkdtemp(prefix=f".{song_dir.name}.", dir=song_dir.parent))
    tmp.chmod(0o755)
    try:
        (tmp / "stems").mkdir()
        write_midi(song, tmp / "song.mid")
        stems = {}
        for role in song.parts:
            midi = write_midi(song, tmp / f"{role}.mid", roles=(role,))
            audio = render_midi(midi, settings.soundfont, settings.sample_rate, settings.gain)
            stems[role] = _fit_length(_high_pass(audio, settings.sample_rate), samples,
                                      settings.sample_rate)
            midi.unlink()
        mix = np.sum(list(stems.values()), axis=0)
        peak = float(np.abs(mix).max())
        scale = PEAK_TARGET / peak if peak > 0 else 1.0
        rng = np.random.default_rng(np.random.SeedSequence((*song.seed, 1)))
        stem_meta = {}
        for role, audio in stems.items():
            audio *= scale
            rms_db = _db(float(np.sqrt(np.mean(audio ** 2))))
            if rms_db < SILENCE_DB:
                raise RuntimeError(f"stem '{role}' rendered silent ({rms_db:.1f} dBFS): "
                                   f"does the soundfont have GM program {song.parts[role].program.program}?")
            sf.write(tmp / "stems" / f"{role}.flac", audio.T, settings.sample_rate, subtype="PCM_24")
            part = song.parts[role]
            tags = stem_tags(song, part, rng)
            stem_meta[role] = {
                "file": f"stems/{role}.flac", "role": role, "program": part.program.program,
                "instrument": part.program.name, "family": part.program.family,
                "style": part.style, "tags": tags, "caption": caption(tags),
                "pan": round(part.pan, 3), "notes": len(part.notes),
                "rms_db": round(rms_db, 2), "peak_db": round(_db(float(np.abs(audio).max())), 2),
            }
        sf.write(tmp / "mix.flac", (mix * scale).T, settings.sample_rate, subtype="PCM_24")
        meta = {
            "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "song_id": song.song_id,
            "seed": list(song.seed), "genre": song.genre, "tempo": song.tempo,
            "key": song.key.name, "meter": f"{song.beats_per_bar}/4", "moods": list(song.moods),
            "seconds": settings.seconds, "sample_rate": settings.sample_rate,
            "soundfont": settings.soundfont.name, "sections": _section_table(song),
            "mix": "mix.flac", "stems": stem_meta,
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2))
        if song_dir.exists():
            shutil.rmtree(song_dir)
        os.replace(tmp, song_dir)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _is_complete(song_dir: Path, settings: RenderSettings, seed: tuple[int, ...]) -> bool:
    """True when `song_dir` already holds this song rendered with these settings."""
    try:
        meta = json.loads((song_dir / "metadata.json").read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("seed") == list(seed) and meta.get("seconds") == settings.seconds
            and meta.get("soundfont") == settings.soundfont.name
            and meta.get("version") == CORPUS_VERSION
            and all((song_dir / s["file"]).is_file() for s in meta["stems"].values()))


def render_corpus(songs: int, seconds: float, seed: int, out: Path, jobs: int | None = None,
                  soundfont: str | os.PathLike | None = None, gain: float = 0.5,
                  progress: bool = True) -> CorpusReport:
    """Compose and render `songs` songs of `seconds` each into `out`, in parallel.

    Songs already rendered with the same settings are kept (so an interrupted run resumes);
    a song that fails is reported in the result and leaves nothing behind.
    """
    if songs < 1 or seconds <= 0:
        raise ValueError(f"need songs >= 1 and seconds > 0 (got songs={songs}, seconds={seconds})")
    find_fluidsynth()
    settings = RenderSettings(float(seconds), find_soundfont(soundfont), gain)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = CorpusReport(out)
    jobs = jobs or os.cpu_count() or 1
    start = time.perf_counter()

    def work(index: int) -> tuple[str, str]:
        name, seed_t = song_name(index), song_seed(seed, index)
        if _is_complete(out / name, settings, seed_t):
            return name, "skipped"
        render_song(generate_song(seed_t, seconds, name), out / name, settings)
        return name, "rendered"

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(work, i): song_name(i) for i in range(songs)}
        bar = tqdm(total=songs, desc="rendering songs", unit="song", disable=not progress)
        for fut in as_completed(futures):
            name = futures[fut]
            try:
                _, status = fut.result()
                (report.rendered if status == "rendered" else report.skipped).append(name)
                if status == "rendered":
                    report.seconds_of_audio += settings.seconds
            except Exception as exc:  # one bad song must not stop the corpus
                report.failed[name] = f"{type(exc).__name__}: {exc}"
                bar.write(f"song {name} failed and was skipped: {report.failed[name]}")
            bar.update()
        bar.close()
    report.wall_seconds = time.perf_counter() - start
    _write_index(out, seed, settings)
    return report


def _write_index(out: Path, seed: int, settings: RenderSettings) -> None:
    """corpus.json lists every complete song folder in `out` (atomically rewritten)."""
    songs = sorted(p.name for p in out.iterdir() if p.is_dir() and (p / "metadata.json").is_file())
    index = {"format": CORPUS_FORMAT, "version": CORPUS_VERSION, "seed": seed,
             "settings": {**asdict(settings), "soundfont": settings.soundfont.name},
             "songs": songs}
    atomic_write(out / "corpus.json", json.dumps(index, indent=2))
