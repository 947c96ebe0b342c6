"""`sideman export`: write a model bundle (ONNX files + manifest) from trained models.

The bundle layout is in export.bundle_format, its reader in plugin_host.bundle. Every exported file is checked
with onnx.checker and, unless `check=False`, compared with its PyTorch module on random
inputs (tolerance `PARITY_TOL`, max abs difference relative to the output's max abs).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from sideman.models.autoencoder import DECODE_MODES, Autoencoder
from sideman.models.bridge import ClapBridge
from sideman.models.clap_house import HouseClap
from sideman.models.consistency import ConsistencyPrecond
from sideman.export.bundle_format import BAND_CODEC, FORMAT, FORMAT_VERSION, MANIFEST, file_sha256
from sideman.numerics.band_codec import BandCodec

from sideman.export import autoencoder_parts, bridge_part, clap_parts, dit_step
from sideman.export.onnx_io import OPSET, export_module, fp16_weights, io_spec, to_fp16, to_int8

PARITY_TOL = 1e-4
# int8 variants against PyTorch, relative RMS error (dynamic quantisation: about 1-3%).
INT8_PARITY_TOL = 0.05
FP16_WEIGHTS_TOL = 0.01  # relative RMS error of a step with float16-stored weights
HEAVY_PARTS = ("dit_step", "encoder", "decoder", "denoiser")  # the parts worth fp16/int8 variants
DEFAULT_STEPS = 5
MAX_STEPS = 8


def check_parity(module: nn.Module, path: Path, args: tuple, names: list[str],
                 tolerance: float = PARITY_TOL, rms: bool = False) -> float:
    """Difference between PyTorch and onnxruntime on `args`, relative to the output: the max
    abs difference over the max abs output, or with `rms` the RMS difference over the RMS
    output (for quantised variants, whose error is spread-out noise with rare larger values)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = module(*args).numpy()
    out = session.run(None, {n: a.numpy() for n, a in zip(names, args)})[0]
    if rms:
        err = float(np.sqrt(np.mean((out - ref) ** 2)) / max(float(np.sqrt(np.mean(ref ** 2))), 1e-6))
    else:
        err = float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-6))
    if not err <= tolerance:
        raise RuntimeError(f"{path.name}: ONNX output differs from PyTorch by {err:.2e} "
                           f"(relative{' RMS' if rms else ''}), above {tolerance:g}")
    return err


def _parity_inputs(name: str, args: tuple) -> tuple:
    """Inputs of another size than the export example, to catch baked-in shapes."""
    g = torch.Generator().manual_seed(1)

    def grow(t: torch.Tensor, axis: int, by: int) -> torch.Tensor:
        shape = list(t.shape)
        shape[axis] += by
        return torch.randn(*shape, generator=g) if t.is_floating_point() else t

    if name == "encoder":
        return (grow(args[0], 3, args[0].shape[3] // 2),)
    if name == "decoder":
        return (grow(args[0], 2, args[0].shape[2] // 2),)
    if name == "dit_step":
        x, sigma, ctx, clap = args[:4]
        t = x.shape[2] + 7
        return (torch.randn(1, x.shape[1], t, generator=g), sigma, torch.randn(1, x.shape[1], t, generator=g),
                clap, torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 1.0]), torch.tensor([-0.5, 0.25, 1.25]))
    return args


def _check(name: str, spec, path: Path, errors: dict, tolerance: float = PARITY_TOL, rms: bool = False) -> None:
    """Parity of `path` against the PyTorch module of `spec` on its example inputs and on inputs
    of another size; the larger error goes into `errors[name]`."""
    module, args, ins = spec[:3]
    errors[name] = max(check_parity(module, path, args, ins, tolerance, rms),
                       check_parity(module, path, _parity_inputs(name.removesuffix("_int8"), args), ins,
                                    tolerance, rms))


def _export(parts_out: dict, name: str, spec, root: Path, check: bool, errors: dict) -> None:
    module, args, ins, outs, axes = spec
    path = export_module(module, args, root / f"{name}.onnx", ins, outs, axes)
    if check:
        _check(name, spec, path, errors)
    parts_out[name] = path


def export_bundle(out: str | os.PathLike, autoencoder: Autoencoder | BandCodec, dit: nn.Module,
                  clap: HouseClap | None = None, bridge: ClapBridge | None = None,
                  name: str = "sideman", fp16: bool = False, int8: bool = False, check: bool = True,
                  training: dict | None = None, guidance: tuple[float, float] = (1.25, 1.25),
                  decode_mode: str = "sequential", decode_steps: int = 2,
                  conditioning_from: str | os.PathLike | None = None, dit_fp16_weights: bool = False) -> Path:
    """Export the models into the folder `out` (written atomically); returns its path.

    fp16 / int8: also write `<part>_fp16.onnx` (for GPUs) / `<part>_int8.onnx` (dynamic
    quantisation, for CPUs) of the heavy parts (`HEAVY_PARTS`); the engine picks them with its
    `precision` setting. int8 variants are checked against PyTorch with `INT8_PARITY_TOL`.

    decode_mode: the engine's default way to run the consistency decoder, "sequential"
    (M2L2's chunk-by-chunk loop) or "parallel" (all chunks batched, three network calls:
    the same arithmetic on a CPU, far fewer launches on a GPU); see
    models.autoencoder.Autoencoder.decode. decode_steps: 2 (M2L2's two-step decoding) or 1.

    autoencoder: the codec: an Autoencoder (its three networks are exported) or the band
    codec (numerics.band_codec: no networks, its settings go into the manifest's "codec").

    dit: a ConsistencyPrecond (C-DiT) around a DiT whose latent size matches the codec.
    dit_fp16_weights: store the DiT step's weights as float16 (half the file; it still
    computes in float32), checked against PyTorch with `FP16_WEIGHTS_TOL`.

    conditioning_from: another bundle whose CLAP towers and bridge (ONNX files and manifest
    sections) this one takes as they are, instead of `clap` and `bridge`: a new generator
    trained on that bundle's CLAP embeddings keeps its conditioning.
    An autoencoder with an output equaliser (a non-zero `eq_db`, training.decoder_eq) puts it
    in `decoder_eq.npz`, which the engine's codec applies.
    """
    if decode_steps not in (1, 2):
        raise ValueError(f"decode_steps must be 1 or 2, not {decode_steps}")
    if decode_mode not in DECODE_MODES:
        raise ValueError(f"decode_mode must be one of {DECODE_MODES}, not {decode_mode!r}")
    if not isinstance(dit, ConsistencyPrecond):
        raise TypeError("the bundle's generator must be a consistency model (C-DiT); "
                        "run consistency training on the EDM checkpoint first")
    if conditioning_from is not None and (clap is not None or bridge is not None):
        raise ValueError("give either clap and bridge or conditioning_from, not both")
    source = _conditioning(conditioning_from) if conditioning_from is not None else None
    band = isinstance(autoencoder, BandCodec)
    if dit.net.cfg.latent_channels != autoencoder.cfg.latent_dim:
        raise ValueError(f"DiT latent channels {dit.net.cfg.latent_channels} != codec "
                         f"latent size {autoencoder.cfg.latent_dim}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files: dict[str, Path] = {}
        errors: dict[str, float] = {}
        heavy = {} if band else dict(autoencoder_parts.parts(autoencoder.eval()))
        heavy["dit_step"] = (dit_step.GuidedStep(dit.eval()),
                             dit_step.example_inputs(dit.net.cfg.latent_channels, dit.net.cfg.clap_dim),
                             dit_step.INPUTS, dit_step.OUTPUTS, dit_step.DYNAMIC_AXES)
        for part, spec in heavy.items():
            _export(files, part, spec, tmp, check, errors)
        if dit_fp16_weights:
            fp16_weights(files["dit_step"])
            if check:
                _check("dit_step", heavy["dit_step"], files["dit_step"], errors, FP16_WEIGHTS_TOL, rms=True)
        if source is not None:
            for part, path in source["files"].items():
                files[part] = Path(shutil.copy2(path, tmp / path.name))
        if not band and autoencoder.eq_db.abs().max() > 0:
            np.savez(tmp / "decoder_eq.npz", eq_db=autoencoder.eq_db.numpy().astype(np.float32))
            files["decoder_eq"] = tmp / "decoder_eq.npz"
        if clap is not None:
            for part, spec in clap_parts.parts(clap.eval()).items():
                _export(files, part, spec, tmp, check, errors)
        if bridge is not None:
            _export(files, "bridge_step", bridge_part.part(bridge.eval()), tmp, check, errors)
            np.savez(tmp / "bridge_norm.npz", mean=bridge.mean.numpy(), std=bridge.std.numpy())
            files["bridge_norm"] = tmp / "bridge_norm.npz"
        for part in (p for p in HEAVY_PARTS if p in heavy):
            if fp16:
                files[f"{part}_fp16"] = to_fp16(files[part], tmp / f"{part}_fp16.onnx")
            if int8:
                files[f"{part}_int8"] = to_int8(files[part], tmp / f"{part}_int8.onnx")
                if check:
                    _check(f"{part}_int8", heavy[part], files[f"{part}_int8"], errors, INT8_PARITY_TOL, rms=True)
        manifest = _manifest(name, files, autoencoder, dit, clap, bridge, guidance, errors, training,
                             {"decode_mode": decode_mode, "decode_steps": decode_steps})
        if source is not None:
            manifest.update(source["sections"])
            manifest["conditioning_from"] = source["bundle_id"]
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return out
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


CONDITIONING_PARTS = ("clap_audio", "clap_text", "bridge_step", "bridge_norm")


def _conditioning(bundle: str | os.PathLike) -> dict:
    """The CLAP and bridge files and manifest sections of an existing bundle (hashes checked)."""
    from sideman.export.bundle_format import bundle_id

    root = Path(bundle)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{root} is not a bundle (no {MANIFEST})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{root / MANIFEST}: format '{manifest.get('format')}' is not {FORMAT}")
    files = {}
    for part in CONDITIONING_PARTS:
        entry = manifest["files"].get(part)
        if entry is None:
            continue
        path = root / entry["path"]
        if file_sha256(path) != entry["sha256"]:
            raise ValueError(f"{path} does not match its manifest's hash")
        files[part] = path
    if "clap_audio" not in files:
        raise ValueError(f"{root} has no CLAP towers to take")
    sections = {k: manifest[k] for k in ("clap", "bridge") if k in manifest}
    return {"files": files, "sections": sections, "bundle_id": bundle_id(manifest)}


def _manifest(name, files, ae, dit, clap, bridge, guidance, errors, training, decoding) -> dict:
    c = ae.cfg
    if isinstance(ae, BandCodec):
        codec = {"codec": {"kind": BAND_CODEC, **dataclasses.asdict(c)}}
    else:
        codec = {"autoencoder": {"latent_dim": c.latent_dim, "latent_hop": c.latent_hop,
                                 "chunk_latents": c.chunk_latents, "n_fft": c.n_fft, "hop": c.hop,
                                 "alpha": c.alpha, "beta": c.beta, "sigma_min": c.sigma_min,
                                 "sigma_max": c.sigma_max, "refine_sigma": c.refine_sigma,
                                 "sample_rate": c.sample_rate, **decoding}}
    entries = {}
    for part, path in files.items():
        entry = {"path": path.name, "sha256": file_sha256(path)}
        if path.suffix == ".onnx":
            entry.update(io_spec(path))
        if part in errors:
            entry["parity_rel_rms_error" if part.endswith("_int8") else "parity_max_rel_error"] = errors[part]
        entries[part] = entry
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "opset": OPSET,
        "sample_rate": c.sample_rate, "hop": c.latent_hop, "latent_channels": c.latent_dim,
        "clap_dim": dit.net.cfg.clap_dim,
        **codec,
        "dit": {"kind": "consistency", "sigma_min": dit.sigma_min, "sigma_max": 80.0, "rho": 7.0,
                "latent_scale": float(getattr(dit, "latent_scale", 1.0)),
                "default_steps": DEFAULT_STEPS, "max_steps": MAX_STEPS,
                "guidance": {"context": guidance[0], "clap": guidance[1]},
                "parameters": sum(p.numel() for p in dit.net.parameters())},
        "files": entries,
        "parity_tolerance": PARITY_TOL,
        "int8_parity_tolerance": INT8_PARITY_TOL,
        "training": training or {},
    }
    if clap is not None:
        cc = clap.config
        manifest["clap"] = {"sample_rate": 48000, "clip_seconds": cc.clip_seconds, "n_fft": cc.n_fft,
                            "hop": cc.hop, "n_mels": cc.n_mels, "f_min": cc.f_min, "f_max": cc.f_max,
                            "text_encoder": cc.text_encoder, "text_dim": cc.text_dim}
    if bridge is not None:
        bc = bridge.config
        manifest["bridge"] = {"sigma_data": bc.sigma_data, "sigma_min": bc.sigma_min,
                              "sigma_max": bc.sigma_max, "rho": bc.rho, "steps": 32,
                              "config": dataclasses.asdict(bc)}
    return manifest


def write_figures(bundle: str | os.PathLike, figures: dict) -> Path:
    """Put measured figures (evaluation.bundle_figures.summarise) into a bundle's manifest,
    replacing any there; the files and the bundle's identity (bundle_id) are unchanged."""
    from sideman.data.files import atomic_write
    from sideman.export.bundle_format import FIGURES

    path = Path(bundle) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{bundle} is not a bundle (no {MANIFEST})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format '{manifest.get('format')}' is not {FORMAT}")
    manifest[FIGURES] = figures
    atomic_write(path, json.dumps(manifest, indent=2) + "\n")
    return path
