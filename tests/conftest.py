"""Shared fixtures: a private cache folder for every test session, and a rendered corpus."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the activity and embedding caches of tests out of the user's home."""
    os.environ["SIDEMAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread (the machine's 2 cores are shared), then restore."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def have_fluidsynth() -> bool:
    from sideman.data.fluidsynth import RenderError, find_soundfont
    try:
        find_soundfont()
    except RenderError:
        return False
    return shutil.which("fluidsynth") is not None


needs_fluidsynth = pytest.mark.skipif(
    not have_fluidsynth() and not os.environ.get("CI"),
    reason="fluidsynth and a GM soundfont are not installed (CI installs them)")


@pytest.fixture(scope="session")
def rendered_corpus(tmp_path_factory):
    """`sideman corpus render --songs 4 --seconds 20`, run once through the real CLI."""
    out = tmp_path_factory.mktemp("corpus")
    proc = subprocess.run([sys.executable, "-m", "sideman.cli", "-q", "corpus", "render",
                           "--songs", "4", "--seconds", "20", "--seed", "7", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out
