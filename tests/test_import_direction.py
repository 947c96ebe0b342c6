"""Imports flow one way through the pipeline, and in one style.

    data -> numerics -> models -> training -> export -> plugin_host -> evaluation -> pipeline -> CLI

A module may import its own package and the packages before it, never one after it
(evaluation comes after the runtime because it measures bundles through the ONNX engine,
as a user hears them). Inside plugin_host the runtime (bundle, engine) comes before the
server (host, jobs, takes, ...) and the server before the DAW links (plugin_host.daw).
`sideman.numerics` is the torch-free layer every later stage shares: it never imports torch.
Function-local imports count too: a late import is still a dependency.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["data", "numerics", "models", "training", "export", "plugin_host", "evaluation", "pipeline", "sideman"]
RUNTIME = {"bundle", "engine", "engine_api", "postprocess", "_bridge"}  # plugin_host's runtime modules


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts if parts[0] == "sideman" else ["sideman", *parts])


def sources():
    for top in ORDER:
        folder = ROOT / top
        for path in sorted(folder.rglob("*.py")):
            if "ableton" in path.parts:  # runs inside Ableton Live's own Python, not as sideman.*
                continue
            yield path


def imports(path: Path):
    """(line, imported module, is relative) of every import in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node.level > 0
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, False


def rank(module: str) -> tuple[int, int]:
    """(stage, sub-stage) of a sideman module; sub-stages order plugin_host's layers."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "sideman"
    stage = ORDER.index(top) if top in ORDER else ORDER.index("sideman")
    sub = 0
    if top == "plugin_host" and len(parts) > 2:
        sub = 0 if parts[2] in RUNTIME else 2 if parts[2] == "daw" else 1
    return stage, sub


def test_ranks_follow_the_pipeline():
    assert rank("sideman.data.audio") < rank("sideman.numerics.sampler") < rank("sideman.models.dit")
    assert rank("sideman.plugin_host.engine") < rank("sideman.plugin_host.host") < rank("sideman.plugin_host.daw")
    assert rank("sideman.evaluation.notes") < rank("sideman.pipeline.recipes") < rank("sideman.commands.train")


@pytest.mark.parametrize("path", list(sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path):
    own = module_name(path)
    wrong = []
    for line, target, relative in imports(path):
        if relative:
            wrong.append(f"line {line}: relative import (write sideman.{'...'})")
        elif target.startswith("sideman.") and rank(target) > rank(own):
            wrong.append(f"line {line}: {own} imports {target}, a later stage")
        elif target.split(".")[0] == "torch" and own.startswith("sideman.numerics"):
            wrong.append(f"line {line}: sideman.numerics must stay torch-free")
    assert not wrong, "\n".join(wrong)
