"""The host's file policy: it reads and writes only inside its cache and session folders."""
from __future__ import annotations

import os
from pathlib import Path


class PathRefused(PermissionError):
    """A path outside the folders the host may touch."""


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
        resolved = Path(path).expanduser().resolve()
        if not any(resolved == r or resolved.is_relative_to(r) for r in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise PathRefused(f"path '{path}' is outside the host's folders ({allowed})")
        return resolved
