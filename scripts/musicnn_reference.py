"""One-off: run musicnn's ORIGINAL TensorFlow code on the test clips and store its outputs.

    .venv/bin/python scripts/musicnn_reference.py          # writes tests/data/musicnn_reference.{npz,json}

TensorFlow never enters the project's venv: this script creates (or reuses) a throwaway venv
outside the repository ($SIDEMAN_TF_VENV, default /tmp/sideman-tf-venv) and re-runs itself
there with --inside. That venv holds tensorflow-cpu 2.21, musicnn==0.1.0 (--no-deps), and
librosa, soxr and soundfile at the versions of the venv that launched it, so that the input
pipeline is the same as ours. Workarounds for running 2019 code on TensorFlow 2.21, kept
minimal and all outside musicnn's code:

- tf_keras + TF_USE_LEGACY_KERAS=1: tf.compat.v1.layers (musicnn's layers) exist only with
  Keras 2;
- numpy 1.26, not 2.x (hence ml_dtypes < 0.6): musicnn computes log10(10000 * x + 1) on a
  float16 array, which numpy 1 promoted to float32 and numpy 2 keeps in float16, where it
  overflows (see sideman/evaluation/musicnn.py). numpy 1 is the behaviour musicnn was made for;
- we do not call extractor.extractor() for the outputs: it hides checkpoint-restore errors
  (a bare except) and in 0.1.0 returns the first patch's penultimate for every patch. We
  build the graph as it does (name scope 'model', placeholders, models.define_model),
  restore with the same Saver call (errors raised) and feed it musicnn's own
  extractor.batch_data (librosa.load, log-mel, patching) on float WAV files of the clips.
  extractor() is run on the first clip only, to check that its taggram equals ours.

The .npz holds per-patch penultimate outputs (not the log-mels, which the test recomputes
from the regenerated clips) plus two log-mel patches with their outputs for a network-only
check; the .json its SHA-256, the versions and the checkpoint files' SHA-256.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data"
TF_PINS = ["tensorflow-cpu==2.21.0", "tf_keras==2.21.0", "numpy==1.26.4", "ml_dtypes>=0.5.1,<0.6"]
CHECKPOINT_FILES = (".index", ".data-00000-of-00001")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- outside: the venv
def ensure_venv(venv: Path) -> Path:
    """The throwaway venv's python, created and installed unless its pins already match."""
    pins = TF_PINS + [f"{p}=={md.version(p)}" for p in ("librosa", "soxr", "soundfile")]
    marker = venv / "sideman-pins.txt"
    python = venv / "bin" / "python"
    if marker.is_file() and marker.read_text().split() == pins and python.exists():
        return python
    if str(venv.resolve()).startswith(str(REPO)):
        raise SystemExit(f"{venv} is inside the repository: choose a folder outside it")
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + pins, check=True)
    subprocess.run(pip + ["--no-deps", "musicnn==0.1.0"], check=True)  # its pins are from 2019
    marker.write_text("\n".join(pins))
    return python


# --------------------------------------------------------------------------- inside: TensorFlow
def load_module(name: str, path: Path):
    """A module of this repository loaded from its file (sideman is not installed here)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(out: Path) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import librosa
    import numpy as np
    import soundfile as sf
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import extractor, models

    clips_mod = load_module("musicnn_clips", REPO / "tests" / "musicnn_clips.py")
    reader = load_module("tf_checkpoint", REPO / "evaluation" / "tf_checkpoint.py")
    model = "MSD_musicnn"
    prefix = os.path.dirname(extractor.__file__) + "/" + model + "/"

    # Our checkpoint reader against TensorFlow's, on every variable.
    ours = reader.read_checkpoint(prefix)
    tf_reader = tf.compat.v1.train.NewCheckpointReader(prefix)  # a prefix, not a folder
    names = sorted(tf_reader.get_variable_to_shape_map())
    assert sorted(ours) == names, "the readers list different variables"
    for name in names:
        assert np.array_equal(ours[name], tf_reader.get_tensor(name)), name
    print(f"tf_checkpoint reads all {len(names)} variables exactly as TensorFlow does")

    # musicnn's graph, built as extractor() builds it.
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    assert n_frames == 187, n_frames
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, len(config.MSD_LABELS))
        tags, penultimate = tf.nn.sigmoid(outputs[0]), outputs[-1]
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, prefix)

    clips = clips_mod.reference_clips()
    pen, taggrams, counts, logmels = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, clip in zip(clips_mod.NAMES, clips):
            paths.append(os.path.join(tmp, f"{name}.wav"))
            sf.write(paths[-1], clip.T, clips_mod.SAMPLE_RATE, subtype="FLOAT")
        for path in paths:
            batch, spectrogram = extractor.batch_data(path, n_frames, n_frames)
            assert np.isfinite(spectrogram).all(), f"{path}: the log-mel overflowed"
            t, p = sess.run([tags, penultimate], feed_dict={x: batch, is_training: False})
            pen.append(p)
            taggrams.append(t)
            counts.append(len(batch))
            logmels.append(batch[0])
        sess.close()
        # extractor() on clip 0: the same tags as our session; its penultimate bug, for the record.
        ext_tags, _, features = extractor.extractor(paths[0], model=model, extract_features=True)
    ext_pen = features["penultimate"]
    # (TF itself differs by ~4e-6 between a batch of 1 patch, as extractor() runs, and of 2)
    batch_noise = float(np.abs(ext_pen[0] - pen[0][0]).max())
    assert np.abs(ext_tags - taggrams[0]).max() < 1e-4 and batch_noise < 1e-4, "extractor() disagrees"
    repeats_first = bool(len(ext_pen) > 1 and np.array_equal(ext_pen[1], ext_pen[0]))

    penultimate_all = np.concatenate(pen).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    arrays = {
        "names": np.array(clips_mod.NAMES),
        "patch_counts": np.array(counts, np.int64),
        "penultimate": penultimate_all,                                  # (P_total, 200)
        "embeddings": np.stack([p.astype(np.float64).mean(0) for p in pen]).astype(np.float32),
        "clip_rms": np.array([np.sqrt(np.mean(np.square(c, dtype=np.float64))) for c in clips]),
        "clip_samples": np.array([c.shape[-1] for c in clips], np.int64),
        "logmel_patches": np.stack([logmels[0], logmels[1]]).astype(np.float32),  # (2, 187, 96)
        "logmel_rows": starts[:2].astype(np.int64),                     # their rows in penultimate
    }
    out.mkdir(parents=True, exist_ok=True)
    npz = out / "musicnn_reference.npz"
    np.savez_compressed(npz, **arrays)
    meta = {
        "npz_sha256": sha256(npz),
        "what": "MSD_musicnn penultimate per 3-s patch (musicnn's graph and batch_data) on "
                "tests/musicnn_clips.reference_clips(seed)",
        "seed": clips_mod.SEED,
        "n_frames": int(n_frames),
        "versions": {p: md.version(p) for p in ("tensorflow-cpu", "tf_keras", "musicnn", "numpy",
                                                "librosa", "soxr", "soundfile")},
        "python": sys.version.split()[0],
        "checkpoint": {s: sha256(Path(prefix + s)) for s in CHECKPOINT_FILES},
        "checkpoint_sha256": hashlib.sha256(b"".join(Path(prefix + s).read_bytes()
                                                     for s in CHECKPOINT_FILES)).hexdigest(),
        "tf_checkpoint_reader_matches": len(names),
        "tf_penultimate_batch1_vs_batch2_max_abs": batch_noise,
        "extractor_repeats_first_penultimate": repeats_first,
    }
    (out / "musicnn_reference.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {npz} ({npz.stat().st_size} bytes), patches per clip {counts}; "
          f"extractor() repeats the first patch's penultimate: {repeats_first}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=os.environ.get("SIDEMAN_TF_VENV", "/tmp/sideman-tf-venv"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        return reference(Path(args.out))
    python = ensure_venv(Path(args.venv))
    subprocess.run([str(python), __file__, "--inside", "--out", args.out], check=True)


if __name__ == "__main__":
    main()
