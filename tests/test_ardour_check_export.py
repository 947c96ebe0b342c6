"""The Ardour end-to-end checker (scripts/ardour/check_export.py) on exports whose answer is known:
the take mixed in at its anchor passes, one sample late fails."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

CHECK = Path(__file__).resolve().parents[1] / "scripts" / "ardour" / "check_export.py"
RATE = 48000


def make_attempt(folder: Path, offset: int) -> None:
    rng = np.random.default_rng(0)
    take = 0.3 * rng.standard_normal((2 * RATE, 2))
    context = 0.1 * rng.standard_normal((6 * RATE, 2))
    anchor = RATE  # anchor_ppq 2.0 at 120 bpm = 1 s
    mix = context.copy()
    mix[anchor + offset:anchor + offset + len(take)] += take
    (folder / "host" / "session" / "takes").mkdir(parents=True)
    (folder / "export").mkdir()
    sf.write(folder / "host" / "session" / "takes" / "take-1.wav", take, RATE, subtype="FLOAT")
    (folder / "host" / "session" / "takes" / "take-1.json").write_text(json.dumps({"anchor_ppq": 2.0, "bpm": 120.0}))
    sf.write(folder / "export" / "mix.wav", mix, RATE, subtype="FLOAT")


def run(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(folder)], capture_output=True, text=True, timeout=60)


def test_take_at_its_anchor_passes(tmp_path):
    make_attempt(tmp_path, 0)
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lag 48000 (expected 48000: +0 samples)" in proc.stdout and "alignment: PASS" in proc.stdout


def test_take_one_sample_late_fails(tmp_path):
    make_attempt(tmp_path, 1)
    proc = run(tmp_path)
    assert proc.returncode == 1
    assert "+1 samples" in proc.stdout and "alignment: FAIL" in proc.stdout
