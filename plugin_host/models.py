"""The bundles a host can generate with, and the engines it has loaded.

    shelf = ModelShelf(default_engine, models_dir=Path("~/.local/share/sideman/models"),
                       loader=lambda path: OnnxEngine(path))
    shelf.names()          -> ["default", "bass-v2", ...]   (the default first, then by name)
    shelf.engine("bass-v2") -> an engine, loaded on first use; at most `keep` stay loaded

A model is the host's default engine ("default"), or a folder of `models_dir` holding a
bundle (its folder name is its name). Names are checked against the folder listing, so a
client can only choose among the bundles the host found. The folder is listed again on
each request, so a bundle copied there while the host runs becomes available.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from sideman.export.bundle_format import MANIFEST
from sideman.plugin_host.engine_api import Engine

DEFAULT = "default"


class ModelShelf:
    """The default engine plus the bundles of `models_dir`, loaded lazily, the `keep` most
    recently used besides the default kept in memory."""

    def __init__(self, default: Engine, models_dir: Path | None = None,
                 loader: Callable[[Path], Engine] | None = None, keep: int = 1):
        self.default, self.models_dir, self.loader, self.keep = default, models_dir, loader, keep
        self._loaded: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def _bundles(self) -> dict[str, Path]:
        if self.models_dir is None or self.loader is None or not self.models_dir.is_dir():
            return {}
        return {p.name: p for p in sorted(self.models_dir.iterdir())
                if p.name != DEFAULT and (p / MANIFEST).is_file()}

    def names(self) -> list[str]:
        return [DEFAULT, *self._bundles()]

    def engine(self, name: str) -> Engine:
        """The engine of model `name` ("" or "default": the default); KeyError if unknown."""
        if name in ("", DEFAULT):
            return self.default
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            bundles = self._bundles()
            if name not in bundles:
                raise KeyError(f"no model '{name}' (the host knows: {', '.join(self.names())})")
            engine = self.loader(bundles[name])
            self._loaded[name] = engine
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
            return engine

    def check(self, name: str) -> str:
        """`name` if the host knows it (without loading it); KeyError otherwise."""
        if name not in ("", DEFAULT) and name not in self._bundles():
            raise KeyError(f"no model '{name}' (the host knows: {', '.join(self.names())})")
        return "" if name == DEFAULT else name
