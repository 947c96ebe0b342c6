"""Audio file access for the data pipeline: info, windowed reads, stereo and 48 kHz.

Every array is float32, channels first: (2, samples) at 48 kHz after `load_audio`.
Resampling uses libsoxr at its very-high-quality setting. Errors name the file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 48000
AUDIO_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".ogg")
_RESAMPLE_MARGIN = 0.05  # seconds of extra source read on each side of a resampled window


class AudioFileError(ValueError):
    """A stem cannot be used as it is; the message names the file and the reason."""


# One wording for each kind of input failure, wherever a file is read (generate, demo, the
# host, the data readers). `path` is shown as given, e.g. "--context song.wav".
def no_such_file(path) -> AudioFileError:
    return AudioFileError(f"{path}: no such file")


def not_audio(path) -> AudioFileError:
    return AudioFileError(f"{path}: not an audio file (WAV, FLAC, AIFF, OGG or MP3)")


def unreadable(path, reason: str) -> AudioFileError:
    return AudioFileError(f"{path}: cannot read it ({reason})")


def wrong_channels(path, channels: int) -> AudioFileError:
    return AudioFileError(f"{path}: has {channels} channels; Sideman reads mono or stereo "
                          f"(downmix it or split it into stereo files first)")


def no_frames(path) -> AudioFileError:
    return AudioFileError(f"{path}: holds no audio frames")


def read_error(path, exc: Exception) -> AudioFileError:
    """The wording for an exception raised by soundfile while opening or decoding `path`."""
    if getattr(exc, "code", None) == 1:  # libsndfile's SF_ERR_UNRECOGNISED_FORMAT
        return not_audio(path)
    reason = getattr(exc, "error_string", None) or str(exc)
    return unreadable(path, reason.rstrip("."))


def check_readable(path: Path, shown=None) -> None:
    """AudioFileError, worded as above, unless `path` is an existing readable file."""
    shown = path if shown is None else shown
    if not os.path.lexists(path):
        raise no_such_file(shown)
    if Path(path).is_dir():
        raise unreadable(shown, "it is a folder")
    if not os.access(path, os.R_OK):
        raise unreadable(shown, "permission denied")


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: Path) -> AudioInfo:
    """Header facts of an audio file; raises AudioFileError if it cannot be read."""
    check_readable(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise read_error(path, exc) from exc
    if info.frames <= 0:
        raise no_frames(path)
    return AudioInfo(Path(path), int(info.samplerate), int(info.channels), int(info.frames))


def check_channels(info: AudioInfo) -> None:
    """Mono and stereo are usable (mono becomes dual-mono); more channels are refused."""
    if info.channels > 2:
        raise wrong_channels(info.path, info.channels)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """(C, N) -> (2, N): mono is duplicated, stereo kept."""
    return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio


def resample(audio: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of (C, N) float audio with libsoxr (VHQ)."""
    if sr_in == sr_out:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), sr_in, sr_out, quality="VHQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def load_audio(path: Path, start: int = 0, frames: int | None = None,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read `frames` samples from `start` (both at `sample_rate`) as (2, frames) float32.

    Files at another rate are read with a small margin, resampled and cropped, so windows
    of a long file never need the whole file in memory. Reads past the end are zero-padded.
    """
    info = audio_info(path)
    check_channels(info)
    if frames is None:
        frames = int(round(info.frames * sample_rate / info.sample_rate)) - start
    ratio = info.sample_rate / sample_rate
    margin = 0 if info.sample_rate == sample_rate else int(_RESAMPLE_MARGIN * info.sample_rate)
    # Start the source read on a sample that maps exactly onto a target sample.
    period = info.sample_rate // math.gcd(info.sample_rate, sample_rate)
    src_start = max(0, (int(np.floor(start * ratio)) - margin) // period * period)
    src_stop = min(info.frames, int(np.ceil((start + frames) * ratio)) + margin)
    try:
        raw, _ = sf.read(str(path), start=src_start, stop=max(src_start, src_stop),
                         dtype="float32", always_2d=True)
    except Exception as exc:
        raise read_error(path, exc) from exc
    audio = to_stereo(np.ascontiguousarray(raw.T))
    if info.sample_rate != sample_rate:
        audio = resample(audio, info.sample_rate, sample_rate)
        offset = start - src_start * sample_rate // info.sample_rate
        audio = audio[:, max(0, offset):]
    out = np.zeros((2, frames), dtype=np.float32)
    n = min(frames, audio.shape[1])
    out[:, :n] = audio[:, :n]
    return out


def load_input(path: Path, what: str) -> np.ndarray:
    """A user's input file (a context, a style reference) as (2, N) float32 at 48 kHz. Errors
    name the option: "--context song.txt: not an audio file (...)"; NaN or infinite samples
    are refused."""
    shown = f"{what} {path}"
    check_readable(path, shown)
    try:
        audio = load_audio(path)
    except AudioFileError as exc:
        raise AudioFileError(f"{what} {exc}") from None
    if not np.isfinite(audio).all():
        raise AudioFileError(f"{shown}: holds NaN or infinite samples; refusing to generate from it")
    return audio


def block_rms(path: Path, block: int = 4096, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mean-square level per block of `block` samples at `sample_rate`, over the whole file.

    Returns (blocks,) float64 mean squares (both channels averaged). Streams the file in
    chunks, so long files are fine; at other rates the block is scaled to the source rate.
    """
    info = audio_info(path)
    check_channels(info)
    src_block = block * info.sample_rate / sample_rate
    n_blocks = int(np.ceil(info.frames / src_block))
    sums = np.zeros(n_blocks)
    counts = np.zeros(n_blocks)
    pos = 0
    try:
        for chunk in sf.blocks(str(path), blocksize=1 << 18, dtype="float32", always_2d=True):
            power = np.mean(chunk.astype(np.float64) ** 2, axis=1)
            idx = ((pos + np.arange(len(power))) / src_block).astype(np.int64)
            sums += np.bincount(idx, weights=power, minlength=n_blocks)[:n_blocks]
            counts += np.bincount(idx, minlength=n_blocks)[:n_blocks]
            pos += len(power)
    except Exception as exc:
        raise read_error(path, exc) from exc
    return sums / np.maximum(counts, 1)


def rms_db(audio: np.ndarray) -> float:
    """RMS level of an array in dBFS (-inf for silence)."""
    ms = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10 * np.log10(ms) if ms > 0 else float("-inf")
