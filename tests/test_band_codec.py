"""The band codec (numerics.band_codec): shapes and layout, known answers on tones (pitch,
level, stereo image, onsets inside a latent frame) and the notes of a FluidSynth-rendered
bass line surviving a round trip, as basic-pitch hears them."""
import numpy as np
import pytest

from conftest import needs_fluidsynth
from sideman.numerics.band_codec import BandCodec, BandCodecConfig, Bands

SR = 48_000
CODEC = BandCodec()


def harmonic(freq: float, seconds: float, amp: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(amp / k * np.sin(2 * np.pi * k * freq * t) for k in range(1, 5))


def spectrum_peak(x: np.ndarray) -> float:
    window = np.hanning(len(x))
    return float(np.argmax(np.abs(np.fft.rfft(x * window))) * SR / len(x))


def test_shapes_layout_and_errors():
    cfg = CODEC.cfg
    assert cfg.latent_hop == 2048 and CODEC.latent_dim == CODEC.layout.channels
    lay = CODEC.layout
    assert lay.mid.stop - lay.mid.start == len(CODEC.mid_bands) == 223  # quarter tones, C1 to 20 kHz
    assert lay.envelope.stop == lay.channels and lay.envelope.stop - lay.envelope.start == 2 * cfg.pool
    audio = 0.1 * np.random.default_rng(0).standard_normal((3, 2, 5000)).astype(np.float32)
    z = CODEC.encode(audio)
    assert z.shape == (3, CODEC.latent_dim, 3) and z.dtype == np.float32 and np.isfinite(z).all()
    assert CODEC.decode(z, length=5000).shape == (3, 2, 5000) and CODEC.decode(z).shape == (3, 2, 3 * 2048)
    with pytest.raises(ValueError, match="batch, 2, samples"):
        CODEC.encode(audio[:, :1])
    with pytest.raises(ValueError, match=r"latents must be \(batch, 287"):
        CODEC.decode(z[:, :10])
    with pytest.raises(ValueError, match="invalid band codec"):
        BandCodecConfig(pool=0)


def test_bands_sum_to_one_and_come_back_to_the_bins():
    bands = Bands(24, 32.7, 20_000.0, 2048, SR)
    assert np.allclose(bands.analysis.sum(1), 1.0)
    flat = np.full((1025, 3), 0.5)  # a flat spectrum stays flat through bands and back
    assert np.allclose(bands.to_bins(bands.log_bands(flat)), np.log(0.5), atol=1e-6)


@pytest.mark.parametrize("freq, level_db", [(82.4, 2.0), (110.0, 2.0), (466.2, 2.5), (1760.0, 7.0)])
def test_a_tone_comes_back_at_its_pitch_and_level(freq, level_db):
    """Pitch within a sixth of a semitone from E2 up; the level within 2 dB in the bass,
    within 7 dB at 1.8 kHz (-6.4 dB measured: a band wider than a partial's peak spreads it: quieter, see
    Bands.log_bands). Below E2 the 23-Hz bins of the 2048-sample STFT decide the pitch (a
    41-Hz fundamental comes back near 43 Hz); basic-pitch hears bass through its harmonics."""
    x = harmonic(freq, 2.0)
    audio = np.stack([x, x])[None].astype(np.float32)
    rec = CODEC.decode(CODEC.encode(audio), length=audio.shape[-1])[0]
    inner = slice(8192, -8192)
    assert spectrum_peak(rec[0, inner]) == pytest.approx(freq, rel=0.01)
    level = 20 * np.log10(np.std(rec[:, inner]) / np.std(audio[0, :, inner]))
    assert abs(level) < level_db


def test_the_stereo_image_is_kept():
    x = harmonic(220.0, 2.0)
    audio = np.stack([x, 0.1 * x])[None].astype(np.float32)  # 20 dB to the left
    rec = CODEC.decode(CODEC.encode(audio), length=audio.shape[-1])[0]
    inner = slice(8192, -8192)
    ratio_db = 20 * np.log10(np.std(rec[0, inner]) / np.std(rec[1, inner]))
    assert ratio_db == pytest.approx(20.0, abs=3.0)


def test_an_onset_inside_a_latent_frame_stays_in_place():
    """A tone starting half-way through a latent frame (43 ms): before the onset the frame
    decodes quiet thanks to the envelope part; with the envelope flattened it does not."""
    n = 16 * 2048
    x = np.zeros(n)
    start = 8 * 2048 + 1024
    x[start:] = harmonic(330.0, (n - start) / SR)
    audio = np.stack([x, x])[None].astype(np.float32)
    z = CODEC.encode(audio)
    rms = lambda y, a, b: float(np.sqrt(np.mean(y[a:b] ** 2)))  # noqa: E731
    rec = CODEC.decode(z, length=n)[0, 0]
    before, after = rms(rec, start - 1536, start - 1024), rms(rec, start + 512, start + 1536)
    assert after > 10 * before
    z[:, CODEC.layout.envelope] = 1.0  # every sub-frame as loud as its frame's loudest
    flat = CODEC.decode(z, length=n)[0, 0]
    assert rms(flat, start - 1536, start - 1024) > 5 * before


@needs_fluidsynth
def test_a_rendered_bass_line_keeps_its_notes(tmp_path):
    pytest.importorskip("basic_pitch")
    from test_notes import bass_part, render

    from sideman.evaluation.notes import Transcriber, note_f1

    audio = render(bass_part(), 33, tmp_path, "bass")
    rec = CODEC.decode(CODEC.encode(audio[None]), length=audio.shape[-1])[0]
    transcriber = Transcriber(threads=1)
    f1 = note_f1(transcriber.transcribe(audio), transcriber.transcribe(rec))
    noise = 0.05 * np.random.default_rng(0).standard_normal(audio.shape).astype(np.float32)
    assert f1 >= 0.6  # 0.69 measured
    assert note_f1(transcriber.transcribe(audio), transcriber.transcribe(noise)) < 0.1


def test_the_level_pass_restores_what_phase_from_peaks_loses():
    """A dense chord (partials closer than a band's width up high): decoded without the level
    pass it comes back quieter in its upper bands; one pass brings every band's level back."""
    from sideman.numerics.spectral import mel_filterbank, stft

    freqs = [130.8, 164.8, 196.0, 246.9, 293.7, 329.6, 392.0, 493.9]
    x = sum(harmonic(f, 2.0, amp=0.05) for f in freqs)
    audio = np.stack([x, x])[None].astype(np.float32)
    z = CODEC.encode(audio)
    bank = mel_filterbank()
    mel = lambda a: np.log10(np.maximum(bank @ np.abs(stft(a, 2048, 512))[0, :, 8:-8] ** 2, 1e-5))  # noqa: E731
    plain = BandCodec(BandCodecConfig(level_passes=0)).decode(z, length=audio.shape[-1])[0]
    matched = CODEC.decode(z, length=audio.shape[-1])[0]
    active = mel(audio[0]).mean(1) > -3  # bands where the chord has energy
    loss_plain = (mel(audio[0]) - mel(plain)).mean(1)[active]
    loss_matched = (mel(audio[0]) - mel(matched)).mean(1)[active]
    assert loss_plain.mean() > 0.1                     # quieter by more than 1 dB on average
    assert abs(loss_matched.mean()) < 0.5 * loss_plain.mean()
