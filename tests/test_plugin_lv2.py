"""The built LV2 bundle as an LV2 host library (lilv) sees it: its URI, its audio ports (main
stereo in, stereo sidechain in, stereo out) and the state interface.

Only discovery: lilv's command-line host (lv2apply) cannot run plugins with atom ports, which
JUCE's LV2 wrapper always has, and neither pedalboard nor DawDreamer hosts LV2; processing is
tested through the VST3 (the same processor code). Needs lv2info and lv2ls (Debian: lilv-utils).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from plugin_files import LV2

URI = "urn:sideman:plugin"

pytestmark = [
    pytest.mark.skipif(not LV2.exists() and not os.environ.get("CI"),
                       reason=f"the plugin is not built ({LV2}): run scripts/build-plugin.sh"),
    pytest.mark.skipif(shutil.which("lv2info") is None and not os.environ.get("CI"),
                       reason="lv2info is not installed (Debian: lilv-utils)"),
]


def lilv(*args: str) -> str:
    env = {**os.environ, "LV2_PATH": str(LV2.parent)}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_lilv_finds_the_plugin_under_its_uri():
    assert lilv("lv2ls").split() == [URI]


def test_ports_and_features():
    info = lilv("lv2info", URI)
    assert re.search(r"^\s*Name:\s+Sideman$", info, re.M)
    ports = re.split(r"\n\s*Port \d+:\n", info)[1:]
    audio_in = [p for p in ports if "lv2core#AudioPort" in p and "lv2core#InputPort" in p]
    audio_out = [p for p in ports if "lv2core#AudioPort" in p and "lv2core#OutputPort" in p]
    assert len(audio_in) == 4 and len(audio_out) == 2
    groups = [re.search(r"Group:\s+(\S+)", p).group(1) for p in audio_in]
    assert groups[0] == groups[1] != groups[2] == groups[3]  # main pair, then the sidechain pair
    assert "http://lv2plug.in/ns/ext/state#interface" in info  # the project saves the plugin's state
    assert "http://lv2plug.in/ns/lv2core#hardRTCapable" in info
