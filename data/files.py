"""Atomic file writes, the one implementation every stage uses (torch-free).

A reader never sees a partial file: the data goes to a temporary file in the target's
folder (named ``.<name>.<random>.tmp``, which the host's start-up cleaning recognises),
is flushed (and fsynced when ``durable``), then renamed over the target. An interrupted
write leaves the old file, or none, never a torn one; the temporary file is removed when
the writer fails. New files get the usual permissions (0666 less the umask).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", durable: bool = True,
                  newline: str | None = None) -> Iterator[IO]:
    """``with atomic_writer(path) as f: ...`` writes `path` atomically. mode "wb" or "w"
    (text is UTF-8); `durable` fsyncs before the rename (skip it for caches)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, newline=newline, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, durable: bool = True) -> Path:
    """Write bytes (or UTF-8 text) to `path` atomically; returns the path."""
    with atomic_writer(path, "wb", durable) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def remove_partial_writes(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers interrupted by a crash left in `folder` (not
    recursive); returns what was removed. Call it only where no writer is running."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
