"""Model bundles (layout: `export.bundle_format`), opened with onnxruntime only.

`Bundle.open` checks the format version and every hash before anything runs, with an
error that says which file and what to do.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sideman.export.bundle_format import (FIGURES, FORMAT, FORMAT_VERSION, MANIFEST, bundle_id, file_sha256,
                                         required_parts)

# auto: the fp16 variants on CUDA when the bundle has them, else fp32.
PRECISIONS = ("auto", "fp32", "fp16", "int8")
PRECISION_HELP = "model variants: auto = fp16 on CUDA when the bundle has them, else fp32; int8 for CPUs"


class BundleError(RuntimeError):
    """A bundle that cannot be used: missing, corrupted, or of another format version."""


def manifest_max_steps(root: str | os.PathLike) -> int | None:
    """The most sampling steps the bundle at `root` allows, read from its manifest alone (no
    model loads, no hash checked); None when the manifest cannot be read."""
    try:
        return int(json.loads((Path(root) / MANIFEST).read_text())["dit"]["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def available_providers() -> list[str]:
    import onnxruntime as ort
    return ort.get_available_providers()


@dataclass
class Bundle:
    """An opened bundle: manifest plus lazily created onnxruntime sessions."""

    root: Path
    manifest: dict
    providers: list[str] = field(default_factory=list)
    intra_threads: int = 0  # 0: onnxruntime's default (all cores)
    precision: str = "auto"  # which variant of each part runs: one of PRECISIONS
    _sessions: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: str | os.PathLike, providers: list[str] | None = None,
             intra_threads: int = 0, verify: bool = True, precision: str = "auto") -> "Bundle":
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        root = Path(root)
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except FileNotFoundError as exc:
            raise BundleError(f"{root} is not a Sideman model bundle (no {MANIFEST})") from exc
        except ValueError as exc:
            raise BundleError(f"{root / MANIFEST} is not valid JSON ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise BundleError(f"{root / MANIFEST}: format '{manifest.get('format')}' is not {FORMAT}")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"{root}: bundle format version {version}, but this Sideman reads "
                              f"version {FORMAT_VERSION}; re-export it with `sideman export` "
                              f"from this version")
        missing = [p for p in required_parts(manifest) if p not in manifest.get("files", {})]
        if missing:
            raise BundleError(f"{root / MANIFEST}: lacks the parts {', '.join(missing)}")
        if precision in ("fp16", "int8") and not any(p.endswith(f"_{precision}") for p in manifest["files"]):
            raise BundleError(f"{root}: this bundle has no {precision} variants; export it with "
                              f"`sideman export --{precision}` or choose another precision")
        bundle = cls(root, manifest, providers or default_providers(), intra_threads, precision)
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        """Every listed file exists and has the SHA-256 the manifest records."""
        for name, entry in self.manifest["files"].items():
            path = self.root / entry["path"]
            if not path.is_file():
                raise BundleError(f"bundle file missing: {path}")
            digest = file_sha256(path)
            if digest != entry["sha256"]:
                raise BundleError(f"bundle file {path} is corrupted or was changed: SHA-256 "
                                  f"{digest[:16]}..., manifest says {entry['sha256'][:16]}...")

    @property
    def bundle_id(self) -> str:
        """A hash over the manifest (which holds every file's hash), its figures left out."""
        return bundle_id(self.manifest)

    def has(self, part: str) -> bool:
        return part in self.manifest["files"]

    def variant(self, part: str) -> str:
        """The file entry that runs for `part` at this bundle's precision: `<part>_fp16` or
        `<part>_int8` where the bundle has one, else `part` itself (fp32)."""
        precision = self.precision
        if precision == "auto":
            precision = "fp16" if "CUDAExecutionProvider" in self.providers else "fp32"
        if precision != "fp32" and self.has(f"{part}_{precision}"):
            return f"{part}_{precision}"
        return part

    def session(self, part: str):
        """The onnxruntime session of a part (of the chosen precision), created on first use."""
        if part not in self._sessions:
            import onnxruntime as ort
            if not self.has(part):
                raise BundleError(f"this bundle has no '{part}' model")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry("session.set_denormal_as_zero", "1")  # as audio code does
            if self.intra_threads:
                options.intra_op_num_threads = self.intra_threads
            path = self.root / self.manifest["files"][self.variant(part)]["path"]
            self._sessions[part] = ort.InferenceSession(str(path), options, providers=self.providers)
        return self._sessions[part]

    def runner(self, part: str):
        """A function feeds -> first output (numpy), on this bundle's providers."""
        session = self.session(part)
        output = session.get_outputs()[0].name
        if "CUDAExecutionProvider" in session.get_providers():
            return _IoBoundRunner(session, output)
        return lambda feeds: session.run([output], feeds)[0]


def default_providers() -> list[str]:
    """CUDA when onnxruntime-gpu sees a GPU, else CPU."""
    available = available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class _IoBoundRunner:
    """Runs a session with IO binding: inputs copied to the GPU once per call, the output
    allocated on the GPU and copied back once, no intermediate host round trips."""

    def __init__(self, session, output: str):
        self.session, self.output = session, output

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import onnxruntime as ort
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(value), "cuda", 0))
        binding.bind_output(self.output, "cuda", 0)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


def describe_figures(manifest: dict) -> list[str]:
    """Lines saying what the bundle measured on held-out songs (manifest "figures", written by
    `sideman bundle-figures`), each beside the real parts' value and a random part's."""
    f = manifest.get(FIGURES)
    if not f:
        return ["This bundle carries no measured figures (`sideman bundle-figures` adds them)."]

    def bounds(key: str, unit: str = "") -> str:
        v = f.get(key, {})
        if "model" not in v:
            return "not measured"
        text = f"{v['model']:.2f} {unit}"
        extra = [f"{name} parts {v[k]:.2f}" for k, name in (("real", "real"), ("random", "random")) if k in v]
        return text + (f" ({', '.join(extra)})" if extra else "")

    lines = [f"What to expect (held-out songs of its {f.get('data', 'corpus')}: {f.get('stems', '?')} stems "
             f"of {f.get('songs', '?')} songs, context + prompt, notes by basic-pitch):",
             f"  notes played:   {bounds('note_seconds', 'note-seconds per 10 s')}",
             f"  in key:         {bounds('in_key', 'of note-time in the context pitch classes')}",
             f"  in time:        {bounds('rhythm', 'of onsets near the context onsets')}"]
    pitch = f.get("median_pitch", {})
    if pitch:
        lines.append("  register:       " + ", ".join(
            f"{role} {v['model']:.0f}/{v['real']:.0f}" for role, v in sorted(pitch.items()))
            + " (median MIDI pitch, generated/real)")
    extras = []
    if "apa_musicnn" in f:
        extras.append(f"APA (musicnn) {f['apa_musicnn']:.2f} (real pairs 1, random 0)")
    if "text_role_control" in f:
        extras.append(f"the prompted role is the one heard in {100 * f['text_role_control']:.0f}% of stems")
    if "rtf" in f:
        extras.append(f"real-time factor {f['rtf']:.3f}")
    if extras:
        lines.append("  " + "; ".join(extras))
    return lines
