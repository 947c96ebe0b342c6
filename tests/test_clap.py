"""The CLAP interface: downmix, deterministic crop/pad, batching, normalisation, disk cache."""
import zlib

import numpy as np
import pytest
import torch

from sideman.models import clap
from sideman.models.clap import ClapEmbedder, EmbeddingCache, fit_length, load_embedder

torch.set_num_threads(1)

CLIP = 960  # samples the fake model sees: 20 ms at 48 kHz


class FakeEmbedder(ClapEmbedder):
    """A fixed random projection of the samples, recording every batch it is given."""

    def __init__(self, dim=512, **kw):
        super().__init__(clip_seconds=CLIP / 48_000, **kw)
        self.proj = np.random.default_rng(0).standard_normal((CLIP, dim)).astype(np.float32)
        self.audio_batches, self.text_batches = [], []

    @property
    def model_id(self):
        return "fake"

    def _audio_batch(self, x):
        self.audio_batches.append(x.copy())
        return 3.0 * (x @ self.proj)

    def _text_batch(self, texts):
        self.text_batches.append(list(texts))
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.proj.shape[1]) * 5 for t in texts]
        return np.stack(rows)


def rng_audio(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.1


def test_fit_length_rules():
    x = np.arange(1, 11, dtype=np.float32)
    assert fit_length(x, 4).tolist() == [4, 5, 6, 7]                       # (10 - 4) // 2 = 3
    assert fit_length(x[:9], 4).tolist() == [3, 4, 5, 6]                   # (9 - 4) // 2 = 2
    assert fit_length(x, 4, crop="start").tolist() == [1, 2, 3, 4]
    assert fit_length(x[:3], 8).tolist() == [1, 2, 3, 1, 2, 3, 0, 0]
    assert fit_length(x[:3], 8, pad="zero").tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert fit_length(x[:4], 4).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        fit_length(x[:0], 4)
    with pytest.raises(ValueError):
        fit_length(x, 4, crop="random")


@pytest.mark.parametrize("audio", [
    rng_audio(3, 2, 2000),
    rng_audio(3, 2000),
    torch.from_numpy(rng_audio(3, 2, 2000)),
    [rng_audio(500), rng_audio(2, 3000), rng_audio(1, CLIP)],
])
def test_embed_audio_shapes_and_unit_norm(audio):
    emb = FakeEmbedder().embed_audio(audio)
    assert emb.shape == (3, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_stereo_is_the_channel_mean_and_long_clips_are_centre_cropped():
    stereo = rng_audio(2, 5000)
    fake = FakeEmbedder()
    got = fake.embed_audio([stereo])
    start = (5000 - CLIP) // 2
    window = stereo.mean(axis=0)[start:start + CLIP]
    np.testing.assert_array_equal(fake.audio_batches[0][0], window)
    np.testing.assert_array_equal(got, fake.embed_audio(window[None]))


def test_channels_last_clips_are_refused():
    with pytest.raises(ValueError, match="channels-first"):
        FakeEmbedder().embed_audio([rng_audio(2000, 2)])
    with pytest.raises(ValueError, match="channels-first"):
        FakeEmbedder().embed_audio(rng_audio(3, 2000, 2))


def test_short_clips_are_repeat_padded_or_zero_padded():
    short = rng_audio(300)
    fake = FakeEmbedder()
    fake.embed_audio([short])
    np.testing.assert_array_equal(fake.audio_batches[0][0], np.concatenate([short, short, short, np.zeros(60, np.float32)]))
    zero = FakeEmbedder(pad="zero")
    zero.embed_audio([short])
    np.testing.assert_array_equal(zero.audio_batches[0][0], np.concatenate([short, np.zeros(660, np.float32)]))


def test_deterministic_and_batched():
    audio = [rng_audio(1500, seed=i) for i in range(5)]
    fake = FakeEmbedder(batch_size=2)
    first = fake.embed_audio(audio)
    assert [len(b) for b in fake.audio_batches] == [2, 2, 1]
    np.testing.assert_array_equal(first, fake.embed_audio(audio))
    np.testing.assert_allclose(first, fake.embed_audio(audio, batch_size=5), atol=1e-6)  # BLAS blocking differs
    assert [len(b) for b in fake.audio_batches[6:]] == [5]


def test_embed_text_batches_and_normalises():
    fake = FakeEmbedder(batch_size=3)
    emb = fake.embed_text(["a", "b", "c", "d"])
    assert emb.shape == (4, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    assert fake.text_batches == [["a", "b", "c"], ["d"]]
    np.testing.assert_array_equal(emb[3], fake.embed_text(["d"])[0])
    assert fake.embed_text([]).shape == (0, 512)
    with pytest.raises(TypeError):
        fake.embed_text("a")


def test_wrong_model_output_is_refused():
    with pytest.raises(RuntimeError):
        FakeEmbedder(dim=256).embed_audio(rng_audio(1, CLIP))


def test_cache_hit_is_identical_and_not_recomputed(tmp_path):
    cache = EmbeddingCache(tmp_path)
    audio = [rng_audio(2, 1200, seed=i) for i in range(4)]
    fake = FakeEmbedder(batch_size=3)
    first = cache.embed_audio(fake, audio)
    assert sum(len(b) for b in fake.audio_batches) == 4
    np.testing.assert_array_equal(first, fake.embed_audio(audio))
    fake.audio_batches.clear()
    again = cache.embed_audio(fake, audio)
    assert fake.audio_batches == []
    np.testing.assert_array_equal(again, first)
    more = cache.embed_audio(fake, audio + [rng_audio(700, seed=9), audio[1]])
    assert sum(len(b) for b in fake.audio_batches) == 1
    np.testing.assert_array_equal(more[:4], first)
    np.testing.assert_array_equal(more[5], first[1])
    assert not list(tmp_path.rglob(".part-*"))
    assert len(list(tmp_path.rglob("*.npy"))) == 5


def test_cache_keys_depend_on_embedder_identity_and_dedupe(tmp_path):
    cache = EmbeddingCache(tmp_path)
    clip_ = rng_audio(300)
    cache.embed_audio(FakeEmbedder(), [clip_])
    other = FakeEmbedder(pad="zero")
    cache.embed_audio(other, [clip_, clip_, clip_])
    assert [len(b) for b in other.audio_batches] == [1]


def test_cache_text_and_corrupt_entries(tmp_path):
    cache = EmbeddingCache(tmp_path)
    fake = FakeEmbedder()
    first = cache.embed_text(fake, ["low sine", "bright noise"])
    files = sorted(tmp_path.rglob("*.npy"))
    files[0].write_bytes(files[0].read_bytes()[:40])                     # a torn write
    fake.text_batches.clear()
    again = cache.embed_text(fake, ["low sine", "bright noise"])
    assert sum(len(b) for b in fake.text_batches) == 1
    np.testing.assert_array_equal(again, first)


def test_cache_default_root_follows_sideman_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIDEMAN_CACHE", str(tmp_path))
    cache = EmbeddingCache()
    cache.embed_text(FakeEmbedder(), ["x"])
    assert cache.root == tmp_path / "clap" and len(list(cache.root.rglob("*.npy"))) == 1


def test_cache_write_failure_leaves_nothing(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    key = cache.key("fake", "text", b"x")

    def broken_save(f, arr):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(clap.np, "save", broken_save)
    with pytest.raises(OSError):
        cache.put(key, np.ones(512, np.float32))
    assert cache.get(key) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_load_embedder_names():
    with pytest.raises(ValueError):
        load_embedder("openl3")
    with pytest.raises(FileNotFoundError):
        load_embedder("laion", checkpoint="/nonexistent/music_audioset_epoch_15_esc_90.14.pt")
