"""The spectral codec: shapes, its STFT pair and loss on known answers, a tiny model that
overfits one clip, and training that resumes exactly."""
import numpy as np
import pytest
import torch

from audio_fixtures import tone, write
from sideman.models.spectral_codec import CODEC_PRESETS, CodecConfig, SpectralCodec, codec_loss, stft
from sideman.training.codec_training import CodecStage, StemBank, initialise_from, load_codec, train_codec

TINY = CODEC_PRESETS["tiny"]


def test_shapes_and_bounded_latents():
    model = SpectralCodec(TINY)
    audio = 0.1 * torch.randn(2, 2, 4 * TINY.latent_hop)
    z = model.encode(audio)
    assert z.shape == (2, TINY.latent_channels, 4) and z.abs().max() < 1
    log_mag, latents = model(audio)
    assert log_mag.shape == (2, 2, 1025, 33) and torch.equal(latents, z)
    assert torch.equal(model.decode_spectrum(z), log_mag)
    rec = model.decode(z)
    assert rec.shape == audio.shape and rec.dtype == torch.float32 and torch.isfinite(rec).all()
    with pytest.raises(ValueError, match="multiple of 4096"):
        model.encode(audio[..., :5000])
    with pytest.raises(ValueError, match="invalid codec config"):
        SpectralCodec(CodecConfig(hop=500))


def test_stft_matches_the_numpy_transform():
    from sideman.numerics.spectral import stft as np_stft

    audio = 0.3 * torch.randn(1, 2, 8 * 512)
    spec = stft(audio, 2048, 512)
    assert spec.shape == (1, 2, 1025, 9)
    assert np.allclose(spec[0].numpy(), np_stft(audio[0].numpy(), 2048, 512), atol=1e-4)


def test_decode_turns_predicted_magnitudes_into_their_audio():
    """decode = exp(decode_spectrum) with phase from the peaks: a head that predicts a
    tone's own magnitudes decodes to that tone (its spectrum again, its pitch)."""
    model = SpectralCodec(TINY)
    t = torch.arange(8 * 4096) / 48_000
    tone_ = (0.3 * torch.sin(2 * torch.pi * 221.0 * t)).expand(1, 2, -1).contiguous()
    target = torch.log(stft(tone_, 2048, 512).abs().clamp_min(1e-5))
    model.decode_spectrum = lambda z: target  # the decoder network, replaced by a perfect one
    rec = model.decode(torch.zeros(1, TINY.latent_channels, 8))
    centre = slice(4096, -4096)
    assert float(rec[..., centre].std() / tone_[..., centre].std()) == pytest.approx(1.0, abs=0.05)
    spectrum = torch.fft.rfft(rec[0, 0, centre] * torch.hann_window(rec.shape[-1] - 8192))
    assert abs(int(spectrum.abs().argmax()) * 48_000 / (rec.shape[-1] - 8192) - 221.0) < 2.0


def test_loss_is_zero_for_a_perfect_prediction_and_grows_with_error():
    t = torch.arange(16384) / 48_000
    audio = (0.3 * torch.sin(2 * torch.pi * 330 * t)).expand(1, 2, -1).contiguous()
    log_mag = lambda x: torch.log(stft(x, 2048, 512).abs().clamp_min(1e-5))  # noqa: E731
    loss, terms = codec_loss(audio, log_mag(audio))
    assert float(loss) == pytest.approx(0.0, abs=1e-5)
    noise = 0.3 * torch.randn(1, 2, 16384, generator=torch.Generator().manual_seed(0))
    _, terms2 = codec_loss(noise, log_mag(noise) + np.log(2))  # twice too loud in every bin
    assert terms2["log_l1"] == pytest.approx(np.log(2), rel=1e-3) and terms2["sc"] == pytest.approx(1.0, rel=1e-3)
    assert terms2["mel"] == pytest.approx(np.log10(4), rel=1e-2)  # log10 of mel power
    wrong_pitch = (0.3 * torch.sin(2 * torch.pi * 350 * t)).expand(1, 2, -1).contiguous()
    half = codec_loss(audio, log_mag(audio) - np.log(2))[1]["sc"]
    assert half == pytest.approx(0.5, rel=1e-3)
    assert codec_loss(audio, log_mag(wrong_pitch))[1]["sc"] > half + 0.1  # a semitone off costs more than half the level


def test_pitch_term_reads_the_notes_region_in_quarter_tones():
    """The quarter-tone bands sum to 1, read a tone at its own band, and the pitch term
    sees a semitone's error in the bass that the mel term hardly sees."""
    from sideman.numerics.spectral import log_frequency_filterbank

    bank = log_frequency_filterbank()
    assert bank.shape == (169, 1025) and np.allclose(bank.sum(1), 1.0, atol=1e-5)
    t = torch.arange(32768) / 48_000
    sine = lambda f: (0.3 * torch.sin(2 * torch.pi * f * t)).expand(1, 2, -1).contiguous()  # noqa: E731
    log_mag = lambda x: torch.log(stft(x, 2048, 512).abs().clamp_min(1e-5))  # noqa: E731
    a3 = float(np.argmax(bank @ stft(sine(220.0), 2048, 512).abs()[0, 0, :, 10].numpy()))
    assert a3 == pytest.approx(24 * np.log2(220.0 / 32.7), abs=1.5)  # band of A3 (below ~800 Hz a band
    # interpolates between 23-Hz bins: it weights the notes region, it cannot resolve more than the STFT)
    _, same = codec_loss(sine(55.0), log_mag(sine(55.0)), pitch_weight=1.0)
    _, wrong = codec_loss(sine(55.0), log_mag(sine(55.0 * 2 ** (1 / 12))), pitch_weight=1.0)
    assert same["pitch"] < 0.02 and wrong["pitch"] > 0.3 and wrong["pitch"] > 3 * wrong["mel"]


def test_a_tiny_codec_overfits_one_clip():
    torch.manual_seed(0)
    model = SpectralCodec(TINY)
    audio = torch.from_numpy(tone(220.0, 4 * 4096 / 48_000, amp=0.3).T.copy())[None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses, mels = [], []
    for _ in range(150):
        log_mag, _ = model(audio)
        loss, terms = codec_loss(audio, log_mag)
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
    state = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=False)
    del state["training"]["pitch_weight"]  # a checkpoint from before the pitch term: trained without it
    torch.save(state, tmp_path / "parts" / "checkpoint.pt")
    with pytest.raises(ValueError, match="other settings"):
        train_codec(corpus, tmp_path / "parts", cfg, progress=False)
    train_codec(corpus, tmp_path / "parts", CodecStage(**{**cfg.__dict__, "pitch_weight": 0.0}), progress=False)


def test_training_can_start_from_another_checkpoint(corpus, tmp_path):
    """init_from copies every tensor whose name and shape match (a wider latent keeps its
    own bottleneck), refuses what is not a codec checkpoint, and resumes as any run."""
    first = train_codec(corpus, tmp_path / "a", CodecStage(preset="tiny", steps=2, batch_size=2, crop=4 * 4096,
                                                           warmup=1, bf16=False, split="all"), progress=False)
    source = torch.load(first, weights_only=False)["model"]
    wider = SpectralCodec(CodecConfig(**{**TINY.__dict__, "latent_channels": 16}))
    loaded = initialise_from(wider, first)
    assert "enc_out.weight" not in loaded and "dec_in.weight" not in loaded and "head.weight" in loaded
    assert all(torch.equal(wider.state_dict()[k], source[k]) for k in loaded)
    cfg = CodecStage(preset="tiny", steps=3, batch_size=2, crop=4 * 4096, warmup=1, bf16=False, split="all",
                     init_from=str(first))
    train_codec(corpus, tmp_path / "b", cfg, progress=False, stop_after=0)
    start = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert start["step"] == 0 and all(torch.equal(start["model"][k], source[k]) for k in source)
    assert all(torch.equal(start["ema"][k], source[k]) for k in source)
    torch.save({"not": "a codec"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a spectral codec"):
        initialise_from(SpectralCodec(TINY), tmp_path / "other.pt")


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
    assert "| band codec (hop 2048) | pitched |" in proc.stdout  # the band codec by default
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
