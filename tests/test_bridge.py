"""The CLAP bridge: shapes, unit-sphere outputs, identity at init, overfitting, unconditional
sampling, save/load, and `train_bridge` end to end on a tiny folder data set."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sideman.training.stages import BridgeStage
from sideman.models.bridge import PRESETS, BridgeMLP, ClapBridge, DenseBlock
from sideman.models.clap_house import PRESETS as CLAP_PRESETS
from sideman.models.clap_house import HouseClap
from sideman.models.edm import EDMLoss
from sideman.training.train_bridge import BridgeObjective, train_bridge
from test_train_clap import HashText, make_folder_corpus

torch.set_num_threads(1)
TINY = PRESETS["tiny"]


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_paper_preset_is_1024_wide_8_blocks():
    cfg = PRESETS["paper"]
    assert (cfg.hidden, cfg.blocks, cfg.dim) == (1024, 8, 512)
    model = ClapBridge(cfg)
    assert sum(p.numel() for p in model.parameters()) == 48_021_504
    assert sum(isinstance(m, DenseBlock) for m in model.modules()) == 8


def test_shapes_and_unit_sphere():
    torch.manual_seed(0)
    bridge = ClapBridge(TINY)
    x, sigma, text = torch.randn(5, 512), torch.rand(5) + 0.1, unit(5, 512)
    assert bridge(x, sigma, text).shape == (5, 512)
    assert bridge.sample(None, 3, steps=4).shape == (3, 512)
    assert bridge.sample(text[0], 2, steps=4).shape == (2, 512)
    batch = bridge.sample(text.numpy(), 2, steps=4)
    assert batch.shape == (5, 2, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=-1), 1.0, atol=1e-5)
    assert np.array_equal(bridge.sample(text, 2, steps=4, seed=3), bridge.sample(text, 2, steps=4, seed=3))
    assert not np.array_equal(bridge.sample(text, 2, steps=4, seed=3), bridge.sample(text, 2, steps=4, seed=4))


def test_normalisation_fits_mean_and_rms():
    audio = F.normalize(unit(200, 512, seed=1) + 3 * unit(1, 512, seed=2), dim=-1)
    bridge = ClapBridge(TINY)
    bridge.fit_normalisation(audio)
    x = bridge.normalise(audio)
    assert x.mean(0).abs().max() < 1e-5
    assert x.pow(2).mean().sqrt().item() == pytest.approx(TINY.sigma_data, rel=1e-4)
    torch.testing.assert_close(bridge.denormalise(x), audio, atol=1e-6, rtol=0)


def test_adaln_zero_starts_as_identity_on_the_noisy_input():
    """At init every block returns its input and F = 0, so D(x; s) = c_skip(s) x exactly,
    whatever the text: the posterior mean for normalised data ~ N(0, sigma_d^2 I)."""
    torch.manual_seed(0)
    bridge = ClapBridge(TINY)
    x, text = torch.randn(6, 512), unit(6, 512)
    sigma = torch.tensor([0.002, 0.1, 0.5, 1.0, 10.0, 80.0])
    sd = TINY.sigma_data
    c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
    torch.testing.assert_close(bridge(x, sigma, text), c_skip[:, None] * x, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(bridge(x, sigma), c_skip[:, None] * x, atol=1e-6, rtol=1e-6)
    net: BridgeMLP = bridge.denoiser.net
    h, cond = torch.randn(6, TINY.hidden), torch.randn(6, TINY.hidden)
    assert all(torch.equal(block(h, cond), h) for block in net.blocks)
    # The zeros do not block learning: the output layer gets a gradient at once.
    EDMLoss()(bridge, bridge.normalise(unit(6, 512, seed=5)), text=text).mean().backward()
    assert net.out.weight.grad.abs().sum() > 0


def overfit(steps=300, lr=3e-3):
    """A tiny bridge trained on 4 (text, audio) pairs whose audio embeddings share a cone."""
    torch.manual_seed(0)
    text = unit(4, 512, seed=1)
    audio = F.normalize(unit(4, 512, seed=2) + 2 * unit(1, 512, seed=3), dim=-1)   # mutual cos ~0.8
    bridge = ClapBridge(TINY)
    bridge.fit_normalisation(audio)
    x0 = bridge.normalise(audio)
    opt = torch.optim.Adam(bridge.parameters(), lr=lr)
    objective = BridgeObjective(text_dropout=0.2)
    idx = torch.arange(64) % 4
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        loss, _ = objective(bridge, {"audio": x0[idx], "text": text[idx]})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return bridge, text.numpy(), audio.numpy()


@pytest.fixture(scope="module")
def trained():
    return overfit()


def test_overfits_a_handful_of_pairs(trained):
    """Samples from each text land on their own audio target: cosine > 0.85 and at least
    0.05 above their cosine to any other target (the targets' mutual cosines are ~0.8)."""
    bridge, text, audio = trained
    mutual = audio @ audio.T
    assert 0.6 < mutual[~np.eye(4, dtype=bool)].mean() < 0.95
    samples = bridge.sample(text, 8, steps=16, seed=0)                # (4, 8, 512)
    cos = np.einsum("bnd,kd->bnk", samples, audio)
    own = cos[np.arange(4), :, np.arange(4)]
    others = np.where(np.eye(4, dtype=bool)[:, None, :], -1.0, cos).max(axis=2)
    assert own.min() > 0.85 and (own - others).min() > 0.05


def test_unconditional_samples_cover_the_targets(trained):
    """Without text the bridge samples the audio distribution: each sample commits to one
    target (median margin over the runner-up > 0.1) and at least 3 of the 4 are hit."""
    bridge, _, audio = trained
    sim = bridge.sample(None, 16, steps=16, seed=1) @ audio.T
    cos, nearest = np.sort(sim, axis=1), np.argmax(sim, axis=1)
    assert np.median(cos[:, -1] - cos[:, -2]) > 0.1 and cos[:, -1].min() > 0.8
    assert len(set(nearest.tolist())) >= 3


def test_save_load_round_trip(trained, tmp_path):
    bridge, text, _ = trained
    bridge.save(tmp_path / "b.pt", clap="house:abc")
    loaded = ClapBridge.load(tmp_path / "b.pt")
    assert loaded.meta == {"clap": "house:abc"} and loaded.config == TINY
    assert np.array_equal(loaded.sample(text, 2, steps=4), bridge.sample(text, 2, steps=4))


def test_guidance_changes_conditional_samples_only(trained):
    bridge, text, audio = trained
    plain = bridge.sample(text, 4, steps=8)
    guided = bridge.sample(text, 4, steps=8, guidance=2.0)
    assert not np.array_equal(plain, guided)
    assert np.array_equal(bridge.sample(None, 4, steps=8), bridge.sample(None, 4, steps=8, guidance=2.0))


def test_train_bridge_end_to_end(tmp_path):
    corpus = make_folder_corpus(tmp_path / "data")
    torch.manual_seed(0)
    HouseClap(CLAP_PRESETS["tiny"]).save(tmp_path / "clap.pt")
    common = dict(stage=BridgeStage(preset="tiny", steps=6, batch_size=16, segments_per_stem=3,
                                    caption_variants_per_stem=2, log_every=2, ckpt_every=3, validation_fraction=0.5),
                  cache_dir=tmp_path / "cache", text_encoder=HashText(), progress=False)
    path = train_bridge(tmp_path / "clap.pt", corpus, tmp_path / "run", **common)
    bridge = ClapBridge.load(path)
    assert bridge.meta["clap"].startswith("house:") and bridge.meta["steps"] == 6
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_pairs"] == 12 * 3 * 2 and np.isfinite(summary["final_loss"])
    assert set(summary["validation_cosine"]) == {"text", "bridge", "other_windows"}
    assert (tmp_path / "run" / "log.csv").is_file() and (tmp_path / "run" / "loss.png").is_file()
    assert not torch.equal(bridge.mean, torch.zeros(512))          # normalisation fitted and saved
    out = bridge.sample(unit(512).numpy(), 3, steps=4)
    assert out.shape == (3, 512) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
