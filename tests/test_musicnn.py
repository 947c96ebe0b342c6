"""MSD_musicnn in torch (sideman.evaluation.musicnn) against musicnn's own TensorFlow outputs
(tests/data/musicnn_reference.*, written by scripts/musicnn_reference.py in a throwaway venv),
and the TF-free checkpoint reader. Floats are compared with stated tolerances only."""
import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sideman.evaluation import musicnn as M

if importlib.util.find_spec("musicnn") is None:
    pytest.skip(M.INSTALL_HINT, allow_module_level=True)

from musicnn_clips import NAMES, SAMPLE_RATE, reference_clips  # noqa: E402
from sideman.evaluation.tf_checkpoint import CheckpointError, crc32c, read_checkpoint  # noqa: E402

DATA = Path(__file__).parent / "data"
NPZ, META = DATA / "musicnn_reference.npz", DATA / "musicnn_reference.json"
# Torch vs TF on identical log-mels: float32 sums in another order (TF itself moves by 4e-6
# between a batch of 1 and of 2 patches). Measured: 5e-6 of an output scale of 2.6.
NETWORK_TOL = 1e-4
# The whole pipeline: the reference's log-mels come from numpy 1.26, whose FFT rounds
# differently from numpy 2's, so a mel power next to a float16 rounding boundary can land one
# float16 step away (seen: 1.3e-4 in a log-mel); newer librosa or soxr releases may move the
# resampled signal or the mel a little more. Measured: 8e-6 of 3.7.
PIPELINE_TOL = 1e-3
LOGMEL_TOL = 5e-3  # a few float16 steps of the mel power, in log10 units


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(NPZ, allow_pickle=False)), json.loads(META.read_text())


@pytest.fixture(scope="module")
def embedder():
    return M.MusicnnEmbedder(batch_size=4)


@pytest.fixture(scope="module")
def clips():
    return reference_clips()


def max_rel(ours, ref) -> tuple[float, float]:
    """Max abs difference, and that over the reference's max abs value (the output scale)."""
    err = float(np.abs(np.asarray(ours, np.float64) - ref).max())
    return err, err / float(np.abs(ref).max())


# ---------------------------------------------------------------------------- the reference
def test_reference_matches_its_recorded_hash(reference):
    _, meta = reference
    assert hashlib.sha256(NPZ.read_bytes()).hexdigest() == meta["npz_sha256"]


def test_installed_checkpoint_is_the_reference_one(reference, embedder):
    _, meta = reference
    assert embedder.checkpoint_sha256 == meta["checkpoint_sha256"], (
        "the installed musicnn checkpoint differs from the one the reference was made with")
    assert embedder.model_id.startswith("musicnn:MSD_musicnn:")


def test_clips_regenerate(reference, clips):
    ref, _ = reference
    assert list(ref["names"]) == list(NAMES)
    assert [c.shape[-1] for c in clips] == list(ref["clip_samples"])
    rms = [np.sqrt(np.mean(np.square(c, dtype=np.float64))) for c in clips]
    np.testing.assert_allclose(rms, ref["clip_rms"], rtol=1e-6)


# ---------------------------------------------------------------------------- parity
def test_network_matches_tensorflow(reference, embedder):
    ref, _ = reference
    ours = embedder.penultimate(ref["logmel_patches"])
    err, rel = max_rel(ours, ref["penultimate"][ref["logmel_rows"]])
    assert ours.shape == (2, 200) and ours.dtype == np.float32
    assert rel <= NETWORK_TOL, f"max abs {err:.2e}, {rel:.2e} of the output scale"


def test_pipeline_matches_tensorflow(reference, embedder, clips):
    ref, _ = reference
    per_clip = [embedder.logmel_patches(c) for c in clips]
    assert [len(p) for p in per_clip] == list(ref["patch_counts"])
    for k in range(2):  # the stored patches are the first of clips 0 and 1
        assert np.abs(per_clip[k][0] - ref["logmel_patches"][k]).max() <= LOGMEL_TOL
    err, rel = max_rel(embedder.penultimate(np.concatenate(per_clip)), ref["penultimate"])
    assert rel <= PIPELINE_TOL, f"per patch: max abs {err:.2e}, {rel:.2e} of the output scale"
    err, rel = max_rel(embedder.embed_audio(clips), ref["embeddings"])
    assert rel <= PIPELINE_TOL, f"per clip: max abs {err:.2e}, {rel:.2e} of the output scale"


# ---------------------------------------------------------------------------- embeddings
def test_embeddings_finite_distinct_repeatable(embedder, clips):
    batch = [clips[0], clips[1], clips[0]]
    a = embedder.embed_audio(batch)
    assert a.shape == (3, M.MusicnnEmbedder.dim) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a[2], a[0], rtol=0, atol=1e-6)  # the same clip twice
    assert np.linalg.norm(a[1] - a[0]) > 0.1 * np.linalg.norm(a[0])  # different clips differ
    np.testing.assert_allclose(embedder.embed_audio(batch), a, rtol=0, atol=1e-6)


def test_short_and_loud_clips(embedder):
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    loud = np.stack([0.9 * np.sin(2 * np.pi * 110 * t)] * 2).astype(np.float32)  # mel power >> 6.55
    short = loud[:, :SAMPLE_RATE // 2] * 0.1  # 0.5 s: under one 3-s patch
    assert embedder.logmel_patches(short).shape == (1, M.PATCH_FRAMES, M.N_MELS)
    e = embedder.embed_audio([np.tile(loud, 4), short])
    assert np.isfinite(e).all()  # float16 arithmetic (numpy 2) would overflow to inf here
    with pytest.raises(ValueError, match="empty"):
        embedder.embed_audio([np.zeros(0, np.float32)])


def test_patching_follows_musicnn():
    """Back-to-back 187-frame patches, partial tail dropped; short inputs repeat-padded."""
    for frames, count in ((1, 1), (186, 1), (187, 1), (373, 1), (374, 2), (626, 3)):
        logmel = np.arange(frames * M.N_MELS, dtype=np.float32).reshape(frames, M.N_MELS)
        p = M.patches(logmel)
        assert p.shape == (count, M.PATCH_FRAMES, M.N_MELS)
        assert np.array_equal(p[0, :min(frames, M.PATCH_FRAMES)], logmel[:M.PATCH_FRAMES])
    p = M.patches(np.arange(100 * M.N_MELS, dtype=np.float32).reshape(100, M.N_MELS))
    assert np.array_equal(p[0, 100:], p[0, :87])


# ---------------------------------------------------------------------------- the reader
def test_crc32c():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert crc32c(data) == crc32c(data[:2500] + data[2500:])
    state = 0xFFFFFFFF  # the plain bitwise definition
    for byte in data:
        state ^= byte
        for _ in range(8):
            state = (state >> 1) ^ (0x82F63B78 if state & 1 else 0)
    assert crc32c(data) == state ^ 0xFFFFFFFF


@pytest.fixture
def checkpoint_copy(tmp_path):
    src = Path(M.checkpoint_prefix())
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(src / suffix, tmp_path / suffix)
    return tmp_path


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_reader_reads_the_weights(checkpoint_copy):
    w = read_checkpoint(f"{checkpoint_copy}/")
    assert w["conv2d/kernel"].shape == (7, 38, 1, 204) and w["conv2d/kernel"].dtype == np.float32
    assert w["dense/kernel"].shape == (1506, 200)


def test_reader_errors(checkpoint_copy, tmp_path):
    prefix = f"{checkpoint_copy}/"
    with pytest.raises(CheckpointError, match="cannot read checkpoint index"):
        read_checkpoint(str(tmp_path / "nothing"))
    data = checkpoint_copy / ".data-00000-of-00001"
    original = data.read_bytes()
    flip_byte(data, 1000)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_checkpoint(prefix)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        M.MusicnnEmbedder(checkpoint=prefix)
    data.write_bytes(original[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(prefix)
    data.unlink()
    with pytest.raises(CheckpointError, match="cannot read checkpoint shard"):
        read_checkpoint(prefix)
    index = checkpoint_copy / ".index"
    flip_byte(index, 100)
    with pytest.raises(CheckpointError, match="block checksum"):
        read_checkpoint(prefix)
    index.write_bytes(index.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="bad footer"):
        read_checkpoint(prefix)
