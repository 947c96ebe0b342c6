"""The spectral codec: shapes, its STFT pair and loss on known answers, a tiny model that
overfits one clip, and training that resumes exactly."""
import numpy as np
import pytest
import torch

from audio_fixtures import tone, write
from sideman.models.spectral_codec import (CODEC_PRESETS, CodecConfig, SpectralCodec, codec_loss, instantaneous_deviation,
                                           integrate_phase, istft, stft)
from sideman.training.codec_training import CodecStage, StemBank, load_codec, train_codec

TINY = CODEC_PRESETS["tiny"]


def test_shapes_and_bounded_latents():
    model = SpectralCodec(TINY)
    audio = 0.1 * torch.randn(2, 2, 4 * TINY.latent_hop)
    z = model.encode(audio)
    assert z.shape == (2, TINY.latent_channels, 4) and z.abs().max() < 1
    log_mag, deviation = model.decode_spectrum(z)
    assert log_mag.shape == deviation.shape == (2, 2, 1025, 33) and deviation.abs().max() < 1
    rec, latents = model(audio)
    assert rec.shape == audio.shape and rec.dtype == torch.float32 and torch.equal(latents, z)
    with pytest.raises(ValueError, match="multiple of 4096"):
        model.encode(audio[..., :5000])
    with pytest.raises(ValueError, match="invalid codec config"):
        SpectralCodec(CodecConfig(hop=500))


def test_stft_pair_reconstructs_audio():
    audio = 0.3 * torch.randn(1, 2, 8 * 512)
    spec = stft(audio, 2048, 512)
    assert spec.shape == (1, 2, 1025, 9)
    assert torch.allclose(istft(spec, 2048, 512, audio.shape[-1]), audio, atol=1e-5)


def test_integrated_phase_renders_a_tone_between_bins():
    """A partial at bin 9.4 given as magnitudes on bins 9 and 10 turning at 9.4 bins: the
    phase sum makes one clean tone at that frequency (not the two bin centres)."""
    n_fft, hop, frames = 2048, 512, 64
    f = 9.4 * 48_000 / n_fft
    t = torch.arange(frames * hop) / 48_000
    target = torch.sin(2 * torch.pi * f * t).expand(1, 2, -1).contiguous()
    mag = stft(target, n_fft, hop).abs()
    deviation = torch.zeros(1, 2, 1025, frames + 1)
    deviation[..., 5:15, :] = 9.4 - torch.arange(5, 15, dtype=torch.float32)[:, None]
    deviation = deviation.clamp(-0.999, 0.999)
    rebuilt = istft(torch.polar(mag, integrate_phase(deviation, n_fft, hop)), n_fft, hop, frames * hop)
    centre = slice(4 * hop, -4 * hop)  # away from the edges
    spectrum = torch.fft.rfft(rebuilt[0, 0, centre] * torch.hann_window(rebuilt[0, 0, centre].shape[0]))
    peak = int(spectrum.abs().argmax()) * 48_000 / rebuilt[0, 0, centre].shape[0]
    assert abs(peak - f) < 2.0                                   # the tone is at 220 Hz, not at a bin centre
    assert float(rebuilt[..., centre].std() / target[..., centre].std()) > 0.8  # the bins add up in phase
    assert integrate_phase(deviation, n_fft, hop).shape == deviation.shape
    measured = instantaneous_deviation(stft(target, n_fft, hop), n_fft, hop)
    assert torch.allclose(measured[0, 0, 9:11, 4:-4], deviation[0, 0, 9:11, 4:-4], atol=0.02)  # its inverse


def test_loss_is_zero_for_a_perfect_reconstruction_and_grows_with_error():
    t = torch.arange(16384) / 48_000
    audio = (0.3 * torch.sin(2 * torch.pi * 330 * t)).expand(1, 2, -1).contiguous()
    loss, terms = codec_loss(audio, audio.clone())
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    noise = 0.3 * torch.randn(1, 2, 16384, generator=torch.Generator().manual_seed(0))
    _, terms2 = codec_loss(noise, 2 * noise)  # twice too loud in every bin
    assert terms2["log_l1"] == pytest.approx(np.log(2), rel=1e-3) and terms2["sc"] == pytest.approx(1.0, rel=1e-3)
    assert terms2["mel"] == pytest.approx(np.log10(4), rel=1e-2)  # log10 of mel power
    wrong_pitch = (0.3 * torch.sin(2 * torch.pi * 350 * t)).expand(1, 2, -1).contiguous()
    half = codec_loss(audio, 0.5 * audio)[1]["sc"]
    assert half == pytest.approx(0.5, rel=1e-3)
    assert codec_loss(audio, wrong_pitch)[1]["sc"] > half + 0.1  # a semitone off costs more than half the level


def test_a_tiny_codec_overfits_one_clip():
    torch.manual_seed(0)
    model = SpectralCodec(TINY)
    audio = torch.from_numpy(tone(220.0, 4 * 4096 / 48_000, amp=0.3).T.copy())[None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses, mels = [], []
    for _ in range(150):
        rec, _ = model(audio)
        loss, terms = codec_loss(audio, rec)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        mels.append(terms["mel"])
    assert losses[-1] < 0.5 * losses[0] and mels[-1] < 0.25 * mels[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec-data")
    for k in range(3):
        write(root / f"s{k}" / "bass.wav", tone(55.0 * 2 ** (k / 12), 3.0, amp=0.3))
        write(root / f"s{k}" / "keys.wav", tone(220.0 * 2 ** (k / 12), 3.0, amp=0.2))
    return root


def test_batches_are_a_pure_function_of_seed_and_step(corpus):
    bank = StemBank(corpus, "all", progress=False)
    cfg = CodecStage(preset="tiny", batch_size=3, crop=4 * 4096, split="all")
    assert torch.equal(bank.batch(cfg, 5), bank.batch(cfg, 5))
    assert not torch.equal(bank.batch(cfg, 5), bank.batch(cfg, 6))
    assert bank.batch(cfg, 0).shape == (3, 2, 4 * 4096)


def test_training_resumes_exactly(corpus, tmp_path):
    cfg = CodecStage(preset="tiny", steps=6, batch_size=2, crop=4 * 4096, warmup=2, bf16=False,
                        split="all", log_every=1)
    whole = train_codec(corpus, tmp_path / "whole", cfg, progress=False)
    train_codec(corpus, tmp_path / "parts", cfg, progress=False, stop_after=3)
    assert torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=False)["step"] == 3
    parts = train_codec(corpus, tmp_path / "parts", cfg, progress=False)
    a, b = load_codec(whole).state_dict(), load_codec(parts).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="other settings"):
        train_codec(corpus, tmp_path / "parts", CodecStage(preset="tiny", steps=7, split="all"), progress=False)


def test_cli_trains_and_measures_a_codec(tmp_path):
    """`sideman codec train` (options generated from CodecStage, defaults shown) and
    `sideman codec eval` on held-out songs: note-F1 table, JSON and pictures."""
    import json
    import subprocess
    import sys

    from test_evaluate import write_dataset

    data = write_dataset(tmp_path / "data", n_songs=2, seconds=11.0)
    run = lambda *a: subprocess.run([sys.executable, "-m", "sideman.cli", "-q", "codec", *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True, timeout=600)
    help_text = run("train", "--help").stdout
    assert "--sc-weight" in help_text and "(default: 0.0004)" in help_text and "--mel-weight" in help_text and "--no-bf16" in help_text
    proc = run("train", "--data", data, "--out", tmp_path / "codec", "--preset", "tiny", "--steps", "3",
               "--batch-size", "2", "--crop", 16384, "--warmup", "1", "--split", "all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    bad = run("train", "--data", data, "--out", tmp_path / "bad", "--crop", "5000")
    assert bad.returncode == 2 and "multiple of 4096" in bad.stderr
    proc = run("eval", tmp_path / "codec" / "checkpoint.pt", "--data", data, "--out", tmp_path / "eval",
               "--per-role", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| codec | pitched |" in proc.stdout and "| 48-24-48 kHz round trip | mix |" in proc.stdout
    summary = json.loads((tmp_path / "eval" / "codec_eval.json").read_text())
    trip = summary["48-24-48 kHz round trip"]["pitched"]
    assert trip["note_f1"]["mean"] >= 0.8  # tones survive a 24 kHz round trip
    assert (tmp_path / "eval" / "codec_bass.png").is_file()


def test_latent_statistics_on_known_latents():
    from sideman.evaluation.codec_eval import Clip, latent_statistics

    clips = [Clip("bass", "s", 0, np.zeros((2, 8), np.float32)) for _ in range(3)]
    rng = np.random.default_rng(0)
    noise = {id(c): rng.uniform(-1, 1, (4, 400)) for c in clips}
    stats = latent_statistics(lambda audio, it=iter(noise.values()): next(it), clips)
    assert stats["channels"] == 4 and stats["frames_per_clip"] == 400
    assert abs(stats["lag1"]) < 0.05                       # white noise: no memory
    assert stats["beyond_0.9"] == pytest.approx(0.1, abs=0.02)  # uniform on (-1, 1)
    assert stats["std"] == pytest.approx(1 / np.sqrt(3), rel=0.03)
    t = np.linspace(0, 1, 400)
    smooth = np.stack([np.sin(2 * np.pi * (k + 1) * t) * 0.5 for k in range(4)])
    stats = latent_statistics(lambda audio: smooth, clips)
    assert stats["lag1"] > 0.99 and stats["step_ratio"] < 0.05 and stats["beyond_0.9"] == 0.0
