"""Reconstruction metrics on inputs with known answers, the two reference systems, and
the evaluation report end to end."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from audio_fixtures import write
from sideman.models.autoencoder import PRESETS, Autoencoder, save_autoencoder
from sideman.evaluation.ae_eval import (evaluate_autoencoder, griffin_lim, log_mel_l1,
                                      mel_filterbank, multires_stft_distance,
                                      reconstruction_metrics, resample_roundtrip, si_sdr,
                                      stereo_image)

SR = 48000


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


def noise(seconds: float = 1.0, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal((2, int(seconds * SR)))).astype(np.float32)


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([0.3 * np.sin(2 * np.pi * freq * t), 0.2 * np.sin(2 * np.pi * freq * t + 1)]).astype(np.float32)


def test_identical_signals_are_perfect():
    x = noise()
    m = reconstruction_metrics(x, x)
    assert m["mrstft"] == 0 and m["log_mel_l1"] == 0
    assert m["si_sdr"] == 100.0
    assert m["icc_err"] == 0 and m["side_mid_err_db"] == 0


def test_scaled_copy_known_answers():
    x = noise()
    m = reconstruction_metrics(x, 0.5 * x)
    assert m["si_sdr"] == 100.0                                  # scale-invariant
    # spectral convergence 0.5 plus |ln 0.5| at every bin
    assert m["mrstft"] == pytest.approx(0.5 + math.log(2), rel=1e-3)
    assert m["log_mel_l1"] == pytest.approx(math.log10(4), rel=1e-3)
    assert m["icc_err"] < 1e-9 and m["side_mid_err_db"] < 1e-9


@pytest.mark.parametrize("snr_db", [0.0, 20.0])
def test_si_sdr_of_known_noise_level(snr_db):
    x = noise(2.0, seed=1)
    n = noise(2.0, seed=2)
    n *= np.sqrt((x ** 2).sum(1, keepdims=True) / (n ** 2).sum(1, keepdims=True)) * 10 ** (-snr_db / 20)
    assert si_sdr(x, x + n) == pytest.approx(snr_db, abs=0.15)
    assert si_sdr(x, -3 * (x + n)) == pytest.approx(si_sdr(x, x + n), abs=0.15)


def test_stereo_image_known_cases():
    mono = np.repeat(noise(0.5)[:1], 2, axis=0)
    assert stereo_image(mono) == (pytest.approx(1.0), -60.0)
    anti = np.stack([mono[0], -mono[0]])
    assert stereo_image(anti) == (pytest.approx(-1.0), 60.0)
    icc, side_mid = stereo_image(noise(2.0, seed=3))
    assert abs(icc) < 0.02 and abs(side_mid) < 0.2
    left_only = np.stack([mono[0], 0 * mono[0]])
    assert stereo_image(left_only)[1] == pytest.approx(0.0, abs=1e-6)   # |S| = |M|
    wide = noise(1.0, seed=4)
    m = reconstruction_metrics(wide, np.repeat(wide[:1], 2, axis=0))
    assert m["icc_err"] > 0.95 and m["side_mid_err_db"] > 55     # stereo -> mono is caught


def test_log_mel_and_filterbank():
    bank = mel_filterbank(SR, 2048, 128)
    assert bank.shape == (128, 1025) and (bank >= 0).all()
    assert (bank.sum(0)[5:1000] > 0).all()                       # no holes in the audio band
    assert log_mel_l1(tone(440), tone(440)) == 0
    assert log_mel_l1(tone(440), tone(3000)) > 0.3


def test_resample_round_trip_reference():
    low, high = tone(1000), tone(16000)
    assert si_sdr(low, resample_roundtrip(low)) > 40
    out = resample_roundtrip(high)
    assert out.shape == high.shape
    assert 10 * np.log10((out ** 2).sum() / (high ** 2).sum()) < -40   # above 12 kHz: gone


def test_griffin_lim_recovers_consistent_phase():
    x = tone(440, 0.5) + 0.3 * tone(1250, 0.5) + noise(0.5, amp=0.01)
    random_phase = griffin_lim(x, n_iter=0)
    recovered = griffin_lim(x, n_iter=32)
    assert recovered.shape == x.shape
    assert multires_stft_distance(x, recovered) < 0.7 * multires_stft_distance(x, random_phase)
    assert np.array_equal(recovered, griffin_lim(x, n_iter=32))    # seeded


def test_evaluate_autoencoder_writes_report(tmp_path):
    for song in range(2):
        rng = np.random.default_rng(song)
        for stem, freq in (("bass", 110.0), ("keys", 660.0)):
            t = np.arange(3 * SR) / SR
            audio = 0.2 * np.sin(2 * np.pi * freq * (1 + song) * t)[:, None] * np.array([[1.0, 0.6]])
            write(tmp_path / "data" / f"song{song}" / f"{stem}.wav",
                  (audio + 0.01 * rng.standard_normal(audio.shape)).astype(np.float32))
    torch.manual_seed(0)
    save_autoencoder(Autoencoder(PRESETS["tiny"]), tmp_path / "ae.pt")
    summary = evaluate_autoencoder(tmp_path / "ae.pt", tmp_path / "data", tmp_path / "eval",
                                   clips=2, seconds=1.0, gl_iters=2, split="all",
                                   examples=1, progress=False)
    assert [r["system"] for r in summary] == ["autoencoder", "soxr 48k>24k>48k", "Griffin-Lim (2 it.)"]
    for name in ("metrics.csv", "summary.csv", "summary.md", "spectrograms.png",
                 "clip0_input.wav", "clip0_autoencoder.wav", "latent_health.json"):
        assert (tmp_path / "eval" / name).is_file()
    with open(tmp_path / "eval" / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    assert "| autoencoder |" in (tmp_path / "eval" / "summary.md").read_text()
