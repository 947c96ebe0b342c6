"""Note-level yardsticks (basic-pitch): known answers on FluidSynth-rendered parts, noise and
shifted copies, and the small functions on hand-made notes."""
import numpy as np
import mido
import pytest

from conftest import needs_fluidsynth
from sideman.evaluation import notes as N

pytest.importorskip("basic_pitch", reason=N.INSTALL_HINT)

SR = 48_000
BPM = 120.0
BEAT = 60.0 / BPM
BARS = 5  # 10 s at 120 bpm in 4/4
C_MAJOR = [0, 2, 4, 5, 7, 9, 11]
# I-vi-ii-V-I in C major, one chord per bar: (root MIDI pitch for the bass, chord tones for the keys)
CHORDS = [(36, [60, 64, 67]), (45, [57, 60, 64]), (38, [62, 65, 69]), (43, [55, 59, 62]), (36, [60, 64, 67])]


def render(events, program: int, tmp_path, name: str) -> np.ndarray:
    """Render [(start beat, length beats, pitch, velocity)] on one GM program, (2, 10 s)."""
    from sideman.data.fluidsynth import find_soundfont, render_midi

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(BPM), time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    timeline = sorted([(int(s * 480), 1, p, v) for s, _, p, v in events] +
                      [(int((s + length) * 480), 0, p, 0) for s, length, p, _ in events])
    now = 0
    for tick, on, pitch, velocity in timeline:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    path = tmp_path / f"{name}.mid"
    mid.save(path)
    audio = render_midi(path, find_soundfont())
    out = np.zeros((2, 10 * SR), np.float32)
    n = min(out.shape[1], audio.shape[1])
    out[:, :n] = audio[:, :n]
    return out


def bass_part(transpose: int = 0, shift_beats: float = 0.0):
    """A bass line on the chord roots, quarter notes, in C major (or transposed)."""
    line = []
    for bar, (root, _) in enumerate(CHORDS):
        for beat, step in enumerate((0, 7, 12, 7)):
            pitch = root + step + transpose
            pitch = pitch - 12 if pitch > 55 else pitch
            line.append((bar * 4 + beat + shift_beats, 0.9, pitch, 100))
    return [e for e in line if e[0] < BARS * 4]


def keys_part():
    """Block chords on every beat: the context's harmony and its beat grid."""
    return [(bar * 4 + beat, 0.9, p, 80) for bar, (_, chord) in enumerate(CHORDS)
            for beat in range(4) for p in chord]


@pytest.fixture(scope="module")
def transcriber():
    return N.Transcriber(threads=1)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("render")
    return {"context": render(keys_part(), 0, tmp, "keys"),  # acoustic grand piano
            "bass": render(bass_part(), 33, tmp, "bass"),  # fingered electric bass
            "tritone": render(bass_part(transpose=6), 33, tmp, "tritone"),
            "late": render(bass_part(shift_beats=0.5), 33, tmp, "late")}


@pytest.fixture(scope="module")
def context(transcriber, rendered):
    return N.ContextNotes.of(transcriber, rendered["context"])


@needs_fluidsynth
def test_context_profile_is_the_key(context):
    profile = np.nonzero(N.pitch_class_profile(context.histogram))[0]
    assert set(profile) <= set(C_MAJOR) and {0, 4, 7} <= set(profile)


@needs_fluidsynth
def test_a_bass_part_in_key_fits_and_a_tritone_away_does_not(transcriber, rendered, context):
    inkey = N.stem_figures(transcriber.transcribe(rendered["bass"]), context, seed=0)
    tritone = N.stem_figures(transcriber.transcribe(rendered["tritone"]), context, seed=0)
    assert inkey["in_profile"] >= 0.95, inkey
    assert tritone["in_profile"] <= 0.6, tritone
    assert inkey["pc_correlation"] > tritone["pc_correlation"]
    # a bass register, and a busy part: 20 quarter notes of 0.45 s are 9 note-seconds per
    # 10 s; basic-pitch often adds the octave above a bass note, so up to twice that
    assert 30 <= inkey["median_pitch"] <= 55
    assert 7.0 <= inkey["note_seconds"] <= 20.0


@needs_fluidsynth
def test_a_part_half_a_beat_late_fits_the_time_worse(transcriber, rendered, context):
    aligned = N.stem_figures(transcriber.transcribe(rendered["bass"]), context, seed=0)
    late = N.stem_figures(transcriber.transcribe(rendered["late"]), context, seed=0)
    assert aligned["rhythm"] >= 0.8, aligned
    assert late["rhythm"] < aligned["rhythm"] - 0.3, (aligned, late)
    assert aligned["rhythm"] > aligned["rhythm_shifted"] + 0.2  # better than chance


def test_white_noise_has_almost_no_notes(transcriber):
    noise = 0.1 * np.random.default_rng(0).standard_normal((2, 10 * SR)).astype(np.float32)
    assert N.note_seconds(transcriber.transcribe(noise)) < 1.0  # per 10 s; a bass part has ~9
    assert len(transcriber.transcribe(np.zeros((2, SR), np.float32))) == 0


def test_transcriber_refuses_bad_audio(transcriber):
    with pytest.raises(ValueError, match="non-finite"):
        transcriber.transcribe(np.full((2, SR), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\(S,\) or \(C, S\)"):
        transcriber.transcribe(np.zeros((1, 2, SR), np.float32))


# ------------------------------------------------------------- small functions


def notes(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def test_profile_takes_the_fewest_classes_holding_ninety_percent():
    hist = np.zeros(12)
    hist[[0, 4, 7]] = [5.0, 3.0, 1.5]
    hist[1] = 0.5  # 5% of the time: left out
    assert list(np.nonzero(N.pitch_class_profile(hist))[0]) == [0, 4, 7]
    assert not N.pitch_class_profile(np.zeros(12)).any()


def test_figures_on_hand_made_notes():
    ctx = N.ContextNotes(histogram=N.pitch_class_histogram(notes((0, 4, 60, 1), (0, 4, 64, 1), (0, 4, 67, 1))),
                         onsets=np.array([0.0, 1.0, 2.0, 3.0]), duration=4.0)
    stem = notes((0.0, 1.0, 48, 1), (1.01, 2.0, 55, 1), (2.3, 3.0, 49, 1), (3.0, 3.5, 48, 1))
    fig = N.stem_figures(stem, ctx, seed=1)
    # note-time: C 1.5 s, G 0.99 s in the profile; C# 0.7 s out of it
    assert fig["in_profile"] == pytest.approx((1.5 + 0.99) / (1.5 + 0.99 + 0.7))
    assert fig["median_pitch"] == 49  # weights: 48 for 1.5 s, 49 for 0.7 s, 55 for 0.99 s
    assert fig["note_seconds"] == pytest.approx(3.19 * 10 / 4)
    assert fig["rhythm"] == pytest.approx(0.75)  # the onset at 2.3 s is off the grid
    empty = N.stem_figures(notes(), ctx, seed=1)
    assert empty["note_seconds"] == 0 and all(np.isnan(empty[k]) for k in N.FIGURES if k != "note_seconds")


def test_onsets_of_a_chord_count_once():
    chord = notes((1.0, 2, 60, 1), (1.005, 2, 64, 1), (1.01, 2, 67, 1), (1.5, 2, 72, 1))
    assert list(N.onset_events(chord)) == [1.0, 1.5]


def test_bootstrap_interval_covers_the_mean_and_skips_nan():
    values = np.r_[np.random.default_rng(0).normal(5, 1, 400), np.nan]
    iv = N.bootstrap(values, seed=0)
    assert iv.n == 400 and iv.low < iv.mean < iv.high and iv.high - iv.low < 0.3
    assert N.bootstrap(values, seed=0) == iv  # seeded
    assert N.bootstrap([np.nan], seed=0).n == 0 and str(N.bootstrap([], seed=0)) == "-"


def test_note_f1_counts_onsets_and_pitches():
    ref = notes((0.0, 0.5, 60, 1), (0.5, 1.0, 64, 1), (1.0, 1.5, 67, 1), (1.5, 2.0, 72, 1))
    assert N.note_f1(ref, ref) == 1.0
    late = ref + [0.03, 0.03, 0, 0]  # 30 ms late: still within 50 ms
    assert N.note_f1(ref, late) == 1.0
    half = np.r_[ref[:2], ref[2:] + [0, 0, 1, 0]]  # two of four a semitone off
    assert N.note_f1(ref, half) == pytest.approx(0.5)
    assert N.note_f1(ref, notes()) == 0.0 and N.note_f1(notes(), notes()) == 1.0
