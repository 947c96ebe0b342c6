"""Sideman: accompaniment generation inside the DAW (improved Diff-A-Riff)."""

__version__ = "0.1.0"
