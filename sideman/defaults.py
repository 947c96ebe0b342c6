"""Default locations: the embedded model bundle, the host's session and cache folders."""
from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_BUNDLE = Path(__file__).resolve().parent / "default_bundle"


def bundle_path() -> Path:
    """Where the bundle used when none is given should be: $SIDEMAN_BUNDLE, else the embedded one."""
    return Path(os.environ.get("SIDEMAN_BUNDLE", EMBEDDED_BUNDLE))


def default_bundle() -> Path:
    """The bundle used when none is given (`bundle_path`); FileNotFoundError if it is not there."""
    path = bundle_path()
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"no model bundle at {path}: pass --bundle DIR (make one with "
                                f"`sideman export`) or set SIDEMAN_BUNDLE")
    return path


def session_dir() -> Path:
    return Path(os.environ.get("SIDEMAN_SESSION", Path.home() / ".local" / "share" / "sideman" / "session"))


def host_cache_dir() -> Path:
    """Where plugins write context files for the host (the plugin's default too)."""
    return Path(os.environ.get("SIDEMAN_HOST_CACHE", Path.home() / ".cache" / "sideman" / "context"))


def models_dir() -> Path:
    """Where `sideman serve` looks for more bundles, one folder each: $SIDEMAN_MODELS, else
    ~/.local/share/sideman/models."""
    return Path(os.environ.get("SIDEMAN_MODELS", Path.home() / ".local" / "share" / "sideman" / "models"))
