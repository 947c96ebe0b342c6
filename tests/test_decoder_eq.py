"""The autoencoder's output equaliser on inputs whose answer is known."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sideman.models.autoencoder import PRESETS, Autoencoder, load_autoencoder, save_autoencoder
from sideman.training.decoder_eq import (EqSettings, equaliser_db, long_term_power, measure_decoder_eq,
                                         octave_smooth, plot_decoder_eq)

BINS = 1024


def test_octave_smoothing_keeps_flat_spectra_and_spreads_a_peak():
    flat = np.full(BINS, 3.0)
    assert np.allclose(octave_smooth(flat, 1 / 3), flat)
    peak = np.zeros(BINS)
    peak[400] = 1.0
    smoothed = octave_smooth(peak, 1 / 3)
    assert np.array_equal(octave_smooth(peak, 0.0), peak)
    # Bin k averages bins k / 2^(1/6) .. k * 2^(1/6): bin 400 reaches 356..449.
    assert smoothed[400] == pytest.approx(1 / (449 - 356 + 1))
    assert smoothed[360] > 0 and smoothed[300] == 0 and smoothed[460] == 0


def test_equaliser_recovers_a_known_smooth_loss_and_is_bounded():
    f = np.arange(BINS)
    power_in = 1.0 / (1.0 + f / 50.0)                   # a falling spectrum
    loss_db = 6.0 + 6.0 * f / BINS                     # 6 dB low in the bass, 12 dB at the top
    eq = equaliser_db(power_in, power_in * 10 ** (-loss_db / 10))
    assert eq.dtype == np.float32 and eq.shape == (BINS,)
    inner = slice(10, 900)  # whole 1/3-octave bands (the top band is cut off at Nyquist)
    assert np.abs(eq[inner] - loss_db[inner]).max() < 0.1
    # Bounds: a 40 dB loss is boosted by max_boost_db only, a 30 dB excess cut by max_cut_db.
    s = EqSettings()
    assert np.allclose(equaliser_db(power_in, power_in * 1e-4), s.max_boost_db)
    assert np.allclose(equaliser_db(power_in, power_in * 1e3), -s.max_cut_db)
    # No gain where the input has no energy; silence is refused.
    empty = power_in.copy()
    empty[700:] = 0.0
    eq = equaliser_db(empty, empty * 0.25 + 1e-30, EqSettings(smooth_octaves=0))
    assert np.allclose(eq[:700], 10 * np.log10(4), atol=1e-3) and np.all(eq[700:] == 0)
    with pytest.raises(ValueError, match="silent"):
        equaliser_db(np.zeros(BINS), np.ones(BINS))


def test_long_term_power_of_a_sine_peaks_at_its_bin():
    sr, n_fft = 48000, 2048
    t = np.arange(sr) / sr
    sine = np.sin(2 * np.pi * (100 * sr / n_fft) * t)     # the centre of bin 100
    power = long_term_power(np.stack([sine, 0.5 * sine]), n_fft, 512)
    assert power.shape == (n_fft // 2,) and int(np.argmax(power)) == 100
    assert power[100] == pytest.approx(4 * long_term_power(0.5 * sine[None], n_fft, 512)[100] * 1.25)


class HalvingCodec:
    """A stand-in autoencoder whose decoding halves the amplitude, times its equaliser's
    mean gain (so a measurement taken with the equaliser on would show it)."""

    def __init__(self):
        self.cfg = SimpleNamespace(n_fft=2048, hop=512, sample_rate=48000)
        self.eq_db = torch.full((BINS,), 20.0)

    def encode(self, audio):
        return audio

    def decode(self, z, length, steps, rng, mode):
        return 0.5 * z[..., :length] * 10 ** (float(self.eq_db.mean()) / 20)


def test_measurement_is_taken_with_the_equaliser_off_and_restores_it():
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((2, 24000)).astype(np.float32) for _ in range(3)]
    codec = HalvingCodec()
    m = measure_decoder_eq(codec, clips, progress=False)
    assert np.allclose(m.eq_db, 20 * np.log10(2), atol=1e-3)   # +6.02 dB, not 6 - 20
    assert torch.all(codec.eq_db == 20.0)


def test_equaliser_scales_the_decoded_audio_by_its_gain(tmp_path):
    """eq_db = g dB everywhere multiplies the decoded audio by 10^(g/20) (the gain is on
    linear amplitude, applied as alpha * g dB to the compressed spectrogram), survives
    saving, and old checkpoints without it load with none."""
    torch.manual_seed(0)
    ae = Autoencoder(PRESETS["tiny"]).eval()
    z = torch.randn(1, ae.cfg.latent_dim, 2 * ae.cfg.chunk_latents)
    decode = lambda model: model.decode(z, steps=1, mode="parallel",  # noqa: E731
                                        rng=np.random.default_rng(1))
    with torch.no_grad():
        plain = decode(ae)
        ae.eq_db.fill_(6.0)
        louder = decode(ae)
    assert plain.abs().max() > 0
    assert torch.allclose(louder, plain * 10 ** (6.0 / 20), rtol=1e-4, atol=1e-6)
    save_autoencoder(ae, tmp_path / "eq.pt")
    assert torch.all(load_autoencoder(tmp_path / "eq.pt").eq_db == 6.0)
    state = torch.load(tmp_path / "eq.pt", weights_only=False)
    del state["state_dict"]["eq_db"]
    torch.save(state, tmp_path / "old.pt")
    assert torch.all(load_autoencoder(tmp_path / "old.pt").eq_db == 0.0)


def test_plot_is_written(tmp_path):
    f = np.arange(BINS) + 1.0
    m = SimpleNamespace(power_in=1 / f, power_out=0.1 / f, eq_db=np.full(BINS, 10.0, np.float32),
                        sample_rate=48000, n_fft=2048)
    path = plot_decoder_eq(m, tmp_path / "eq.png")
    assert path.stat().st_size > 10_000


def test_cli_writes_the_equalised_model_and_refuses_to_overwrite_its_input(tmp_path):
    import subprocess
    import sys

    from audio_fixtures import tone, write

    for k in range(3):
        write(tmp_path / "data" / f"song_{k}" / "bass.wav", tone(110.0 * (k + 1), 3.0, amp=0.3))
        write(tmp_path / "data" / f"song_{k}" / "keys.wav", tone(660.0, 3.0, amp=0.2))
    torch.manual_seed(0)
    save_autoencoder(Autoencoder(PRESETS["tiny"]), tmp_path / "ae.pt")
    run = lambda *a: subprocess.run([sys.executable, "-m", "sideman.cli", "-q", "ae", "equalise",  # noqa: E731
                                     tmp_path / "ae.pt", "--data", tmp_path / "data", "--windows", "2",
                                     "--seconds", "1", *a], capture_output=True, text=True, timeout=300)
    proc = run("--out", tmp_path / "eq.pt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    eq = load_autoencoder(tmp_path / "eq.pt").eq_db.numpy()
    assert np.abs(eq).max() > 0 and np.array_equal(eq, np.load(tmp_path / "eq.npz")["eq_db"])
    assert (tmp_path / "eq.png").is_file() and "equalised autoencoder written" in proc.stdout
    proc = run("--out", tmp_path / "ae.pt")
    assert proc.returncode != 0 and "must differ" in proc.stderr
