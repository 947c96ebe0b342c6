"""The model bundle's format, written by `export.bundle` and read by `plugin_host.bundle`
(torch-free: the lean runtime imports it).

    BUNDLE/manifest.json   format and version, signal settings, schedules, guidance defaults,
                           each file's SHA-256 and input/output names and shapes, opset,
                           and the training configuration it came from
    BUNDLE/*.onnx          encoder, decoder, denoiser (autoencoder), dit_step (C-DiT),
                           bridge_step (CLAP bridge), clap_audio, clap_text (house CLAP)
    BUNDLE/tokenizer.json  the text tower's tokenizer
    BUNDLE/*_fp16.onnx     optional fp16 variants of the heavy parts, for GPUs
    BUNDLE/*_int8.onnx     optional int8 variants (dynamic quantisation), for CPUs with VNNI
"""
from __future__ import annotations

import hashlib
from pathlib import Path

FORMAT = "sideman-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTS = ("encoder", "decoder", "denoiser", "dit_step", "bridge_step", "clap_audio", "clap_text")
REQUIRED_PARTS = ("encoder", "decoder", "denoiser", "dit_step")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
