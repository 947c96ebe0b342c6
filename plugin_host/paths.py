"""The host's file policy: it reads and writes only inside its cache and session folders.

A path a client names is checked twice: when the request arrives (`check`, for a quick,
clear error) and again when the file is read (`open`), on the job worker, possibly much
later. `open` resolves the path again and then opens it one component at a time from the
allowed folder with O_NOFOLLOW, so a folder or file swapped for a symbolic link after the
first check is refused instead of followed; only regular files are opened (no FIFOs,
devices or folders).
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from sideman.data.audio import (AudioFileError, no_frames, no_such_file, read_error, resample, to_stereo,
                                wrong_channels)


class PathRefused(PermissionError):
    """A path outside the folders the host may touch."""


MIN_RATE, MAX_RATE = 8000, 384000  # audio files the host reads
_WALK = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class FolderPolicy:
    """Resolves client-given paths and refuses any that leave the allowed folders.

    Symbolic links and '..' are resolved before the check, so a link inside the cache that
    points elsewhere is refused too.
    """

    def __init__(self, *roots: Path):
        self.roots = tuple(Path(r).resolve() for r in roots)
        for root in self.roots:
            root.mkdir(parents=True, exist_ok=True)

    def check(self, path: str | os.PathLike) -> Path:
        if not str(path):
            raise PathRefused("empty path")
        if "\0" in str(path):
            raise PathRefused("path holds a NUL character")
        try:
            resolved = Path(path).expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a bad user name...
            raise PathRefused(f"path '{path}' cannot be resolved ({exc})") from None
        if not any(resolved == r or resolved.is_relative_to(r) for r in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise PathRefused(f"path '{path}' is outside the host's folders ({allowed})")
        return resolved

    def open(self, path: str | os.PathLike) -> BinaryIO:
        """The regular file at `path` opened for reading, checked now: inside the folders, no
        symbolic link on the way from the folder to the file. PathRefused or ValueError."""
        resolved = self.check(path)
        root = next(r for r in self.roots if resolved == r or resolved.is_relative_to(r))
        parts = resolved.relative_to(root).parts
        if not parts:
            raise PathRefused(f"'{path}' is one of the host's folders, not a file")
        try:
            fd = self._open_walk(root, parts) if _WALK else self._open_checked(resolved)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise no_such_file(path) from None
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise PathRefused(f"'{path}' changed to a symbolic link or a file since it was checked; "
                                  f"refused") from None
            raise PathRefused(f"'{path}' cannot be opened ({os.strerror(exc.errno or 0)})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PathRefused(f"'{path}' is not a regular file")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _open_walk(root: Path, parts: tuple[str, ...]) -> int:
        """openat() from `root` one component at a time, never following a symbolic link."""
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC)
        try:
            for part in parts[:-1]:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC, dir_fd=folder)
                os.close(folder)
                folder = inner
            # O_NONBLOCK: a FIFO must not block the open; fstat then refuses it
            return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, dir_fd=folder)
        finally:
            os.close(folder)

    def _open_checked(self, resolved: Path) -> int:
        """Where openat() is missing (Windows): open, then check that the opened file is the
        one the resolved path names and that the path still resolves inside the folders."""
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_BINARY", 0) | _CLOEXEC)
        try:
            if not os.path.samestat(os.fstat(fd), os.stat(self.check(resolved))):
                raise OSError(errno.ELOOP, "the file changed while it was opened")
            return fd
        except BaseException:
            os.close(fd)
            raise

    def read_audio(self, path: str | os.PathLike, sample_rate: int,
                   max_seconds: float) -> tuple[np.ndarray, str]:
        """(audio (2, N) float32 at `sample_rate`, sha256 of the file) read through `open`:
        the bytes hashed are the bytes decoded. Refuses files longer than `max_seconds`, with
        more than two channels, or holding NaN or infinite samples."""
        with self.open(path) as f:
            digest = hashlib.sha256()
            while chunk := f.read(1 << 20):
                digest.update(chunk)
            f.seek(0)
            try:
                with sf.SoundFile(f) as sound:
                    rate, channels, frames = sound.samplerate, sound.channels, sound.frames
                    if frames <= 0:
                        raise no_frames(path)
                    if channels > 2:
                        raise wrong_channels(path, channels)
                    if not MIN_RATE <= rate <= MAX_RATE:  # bounds the frames read as well as the length
                        raise AudioFileError(f"{path}: sample rate {rate} Hz is not within "
                                             f"{MIN_RATE}..{MAX_RATE}")
                    if frames > max_seconds * rate:
                        raise AudioFileError(f"{path}: {frames / rate:.1f} s is longer than the host's "
                                             f"limit of {max_seconds:g} s for input files")
                    raw = sound.read(dtype="float32", always_2d=True)
            except AudioFileError:
                raise
            except Exception as exc:
                raise read_error(path, exc) from None
        if not np.isfinite(raw).all():
            raise AudioFileError(f"{path}: holds NaN or infinite samples")
        audio = to_stereo(np.ascontiguousarray(raw.T))
        return resample(audio, rate, sample_rate), digest.hexdigest()
