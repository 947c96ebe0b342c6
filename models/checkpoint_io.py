"""Writing model files atomically (data.files.atomic_writer around torch.save)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from sideman.data.files import atomic_writer


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to `path` so that readers see the old file or the whole new one."""
    with atomic_writer(path) as f:
        torch.save(obj, f)
    return Path(path)
