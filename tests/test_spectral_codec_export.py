"""The spectral codec exported to ONNX and run in numpy + onnxruntime (numerics.spectral_codec)
matches the torch model: features, latents, log magnitudes and decoded audio."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from sideman.export.spectral_codec_parts import export_codec
from sideman.models.spectral_codec import CODEC_PRESETS, SpectralCodec
from sideman.numerics.spectral_codec import SpectralCodec as RuntimeCodec, SpectralCodecConfig, features

TINY = CODEC_PRESETS["tiny"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = SpectralCodec(TINY).eval()
    with torch.no_grad():  # a head that is not flat, so the decoded audio has peaks to follow
        model.head.bias.copy_(torch.randn_like(model.head.bias) - 4.0)
    out = tmp_path_factory.mktemp("codec-onnx")
    files = export_codec(model, out, int8=True)
    runners = {}
    for name in ("encoder", "decoder"):
        session = ort.InferenceSession(str(out / files[name]["path"]), providers=["CPUExecutionProvider"])
        runners[name] = lambda feeds, s=session: s.run(None, feeds)[0]
    cfg = SpectralCodecConfig(latent_dim=TINY.latent_channels, latent_hop=TINY.latent_hop, n_fft=TINY.n_fft,
                              hop=TINY.hop, analysis_ffts=TINY.analysis_ffts)
    return model, RuntimeCodec(cfg, runners["encoder"], runners["decoder"]), files


def test_features_match_the_torch_model():
    model = SpectralCodec(TINY)
    audio = 0.2 * np.random.default_rng(0).standard_normal((2, 2, 3 * 4096)).astype(np.float32)
    ours = features(audio, TINY.analysis_ffts, TINY.hop)
    theirs = model.features(torch.from_numpy(audio)).numpy()
    assert ours.shape == theirs.shape == (2, 2 * TINY.analysis_bins, 24)
    assert np.abs(ours - theirs).max() < 2e-3  # log magnitudes; float32 STFTs of two libraries


def test_onnx_codec_matches_torch(exported):
    model, codec, files = exported
    assert set(files) == {"encoder", "decoder", "encoder_int8", "decoder_int8"}
    audio = 0.2 * np.random.default_rng(1).standard_normal((1, 2, 4 * 4096)).astype(np.float32)
    z = codec.encode(audio)
    with torch.no_grad():
        z_torch = model.encode(torch.from_numpy(audio)).numpy()
        rec_torch = model.decode(torch.from_numpy(z)).numpy()
    assert z.shape == (1, TINY.latent_channels, 4) and np.abs(z - z_torch).max() < 1e-3
    rec = codec.decode(z)
    assert rec.shape == audio.shape and rec.dtype == np.float32
    assert np.sqrt(np.mean((rec - rec_torch) ** 2)) < 1e-3 * np.sqrt(np.mean(rec_torch ** 2)) + 1e-7


def test_lengths_are_padded_to_whole_latent_hops_and_trimmed_back(exported):
    _, codec, _ = exported
    audio = 0.1 * np.ones((1, 2, 5000), np.float32)
    z = codec.encode(audio)
    assert z.shape[-1] == 2 and codec.cfg.latent_frames(5000) == 2
    assert codec.decode(z, length=5000).shape == (1, 2, 5000)
    assert codec.decode(z).shape == (1, 2, 8192)
