"""The laion-clap adapter, run against fake models: laion-clap and its weights are not needed."""
import argparse
import os
import pickle
import sys
import zlib

import numpy as np
import pytest
import torch

from sideman.models.clap_laion import LaionClapEmbedder, laion_state_dict

torch.set_num_threads(1)

SR = 48_000
WINDOW = 10 * SR
PICK = np.linspace(0, WINDOW - 1, 512).astype(int)


class FakeClapModule:
    """Mimics CLAP_Module's two inference methods, including its single-text failure."""

    def __init__(self):
        self.audio_calls, self.text_calls = [], []

    def get_audio_embedding_from_data(self, x, use_tensor=False):
        assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape[1:] == (WINDOW,)
        assert use_tensor is False
        self.audio_calls.append(x.copy())
        return 4.0 * x[:, PICK] + 1e-3

    def get_text_embedding(self, texts):
        if len(texts) == 1:
            raise ValueError("not enough values to unpack (expected 2, got 1)")
        self.text_calls.append(list(texts))
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(512) * 7 for t in texts]
        return torch.tensor(np.stack(rows))


def noise(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape).astype(np.float32)


def test_audio_is_downmixed_cropped_padded_and_normalised():
    fake = FakeClapModule()
    emb = LaionClapEmbedder(fake, batch_size=8)
    short, long_stereo, exact = noise(3 * SR, seed=1), noise(2, 12 * SR, seed=2), noise(WINDOW, seed=3)
    out = emb.embed_audio([short, long_stereo, exact])
    assert out.shape == (3, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    seen = fake.audio_calls[0]
    np.testing.assert_array_equal(seen[0, :9 * SR], np.tile(short, 3))
    assert not seen[0, 9 * SR:].any()
    np.testing.assert_array_equal(seen[1], long_stereo.mean(axis=0)[SR:SR + WINDOW])
    np.testing.assert_array_equal(seen[2], exact)


def test_audio_batches_and_determinism():
    fake = FakeClapModule()
    emb = LaionClapEmbedder(fake, batch_size=2)
    clips = noise(5, 2, 2 * SR)
    first = emb.embed_audio(clips)
    assert [len(c) for c in fake.audio_calls] == [2, 2, 1]
    np.testing.assert_array_equal(first, emb.embed_audio(clips))


def test_text_batches_and_single_text_workaround():
    fake = FakeClapModule()
    emb = LaionClapEmbedder(fake, batch_size=3)
    texts = ["electric bass, low", "bright noise", "drum kit, fast", "a sad walking bass line"]
    out = emb.embed_text(texts)
    assert fake.text_calls == [texts[:3], [texts[3], texts[3]]]
    assert out.shape == (4, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(emb.embed_text([texts[0]])[0], out[0], atol=1e-7)


def test_identity_names_the_checkpoint():
    emb = LaionClapEmbedder(FakeClapModule())
    assert emb.identity.startswith("laion:music_audioset_epoch_15_esc_90.14.pt|sr=48000|clip=480000|crop=centre")


def test_laion_state_dict_unwraps_and_drops_stale_keys(tmp_path):
    path = tmp_path / "ckpt.pt"
    weights = {"module.audio_projection.0.weight": torch.ones(2, 2),
               "module.text_branch.embeddings.position_ids": torch.arange(4)}
    torch.save({"epoch": 15, "state_dict": weights}, path)
    assert list(laion_state_dict(path)) == ["audio_projection.0.weight"]
    old_transformers = {"audio_projection.0.weight", "text_branch.embeddings.position_ids"}
    assert set(laion_state_dict(path, expected=old_transformers)) == old_transformers
    torch.save({"state_dict": weights, "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(pickle.UnpicklingError):
        laion_state_dict(path)
    assert list(laion_state_dict(path, trust_checkpoint=True)) == ["audio_projection.0.weight"]


def test_from_checkpoint_without_laion_clap(tmp_path, monkeypatch):
    ckpt = tmp_path / "music.pt"
    torch.save({}, ckpt)
    monkeypatch.setitem(sys.modules, "laion_clap", None)
    with pytest.raises(ImportError, match=r"sideman\[clap\]"):
        LaionClapEmbedder.from_checkpoint(ckpt)


FAKE_LAION = '''
import sys
import torch
ARGV_AT_IMPORT = list(sys.argv)

class CLAP_Module:
    built = []
    def __init__(self, enable_fusion=True, device=None, amodel="HTSAT-tiny", tmodel="roberta"):
        print("noise on stdout")
        CLAP_Module.built.append(dict(enable_fusion=enable_fusion, amodel=amodel, device=device))
        self.model = torch.nn.Linear(3, 2)
    def eval(self):
        self.model.eval()
        return self
'''


def test_from_checkpoint_builds_htsat_base_offline_and_loads_weights(tmp_path, monkeypatch, capsys):
    (tmp_path / "laion_clap.py").write_text(FAKE_LAION)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "laion_clap", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(sys, "argv", ["sideman", "--not-a-laion-flag"])
    weight, bias = torch.randn(2, 3), torch.randn(2)
    ckpt = tmp_path / "music_audioset_epoch_15_esc_90.14.pt"
    torch.save({"state_dict": {"module.weight": weight, "module.bias": bias,
                               "module.text_branch.embeddings.position_ids": torch.arange(3)}}, ckpt)

    emb = LaionClapEmbedder.from_checkpoint(ckpt, batch_size=4)

    fake = sys.modules["laion_clap"]
    assert fake.ARGV_AT_IMPORT == ["sideman"] and sys.argv == ["sideman", "--not-a-laion-flag"]
    assert fake.CLAP_Module.built == [dict(enable_fusion=False, amodel="HTSAT-base", device="cpu")]
    assert "noise on stdout" not in capsys.readouterr().out
    assert torch.equal(emb.model.model.weight, weight) and torch.equal(emb.model.model.bias, bias)
    assert emb.model_id.startswith("laion:music_audioset_epoch_15_esc_90.14.pt:")
    assert emb.batch_size == 4 and emb.clip_samples == WINDOW
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
