"""The model bundle's format, written by `export.bundle` and read by `plugin_host.bundle`
(torch-free: the lean runtime imports it).

    BUNDLE/manifest.json   format and version, signal settings, schedules, guidance defaults,
                           each file's SHA-256 and input/output names and shapes, opset,
                           and the training configuration it came from
    BUNDLE/*.onnx          encoder, decoder, denoiser (autoencoder; none with the band
                           codec, whose settings are the manifest's "codec"), dit_step (C-DiT),
                           bridge_step (CLAP bridge), clap_audio, clap_text (house CLAP)
    BUNDLE/tokenizer.json  the text tower's tokenizer
    BUNDLE/*_fp16.onnx     optional fp16 variants of the heavy parts, for GPUs
    BUNDLE/*_int8.onnx     optional int8 variants (dynamic quantisation), for CPUs with VNNI

The manifest's optional "figures" (`sideman bundle-figures`) say what the bundle measured on
held-out songs; they describe the model and are left out of its identity (bundle_id).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

FORMAT = "sideman-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTS = ("encoder", "decoder", "denoiser", "dit_step", "bridge_step", "clap_audio", "clap_text")
REQUIRED_PARTS = ("encoder", "decoder", "denoiser", "dit_step")  # a bundle with the autoencoder
BAND_CODEC = "band"  # manifest["codec"]["kind"] of a bundle whose codec is numerics.band_codec (no files)
FIGURES = "figures"  # manifest key: measured figures (evaluation.bundle_figures); not part of the model's identity


def required_parts(manifest: dict) -> tuple[str, ...]:
    """The files a bundle must hold: the DiT step, and the autoencoder's three networks unless
    its codec is the band codec (signal processing only, its settings in the manifest)."""
    if manifest.get("codec", {}).get("kind") == BAND_CODEC:
        return ("dit_step",)
    return REQUIRED_PARTS


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def identity(manifest: dict) -> dict:
    """The manifest without what describes rather than defines the model (its figures)."""
    return {k: v for k, v in manifest.items() if k != FIGURES}


def bundle_id(manifest: dict) -> str:
    """A bundle's identity: a hash over its manifest (which holds every file's hash), figures left out."""
    import json

    return hashlib.sha256(json.dumps(identity(manifest), sort_keys=True).encode()).hexdigest()
