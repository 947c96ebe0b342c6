"""Notes, key and time: note-level yardsticks from basic-pitch, a transcriber we did not train.

basic-pitch (Spotify, Apache-2.0; Bittner et al., ICASSP 2022) ships its network as ONNX
inside its PyPI wheel. It is installed with ``--no-deps`` (its declared TensorFlow is not
needed) and run here on onnxruntime. Only the audio loading is ours: basic-pitch reads a
file with ``librosa.load(sr=22050, mono=True)``, which resamples with soxr at high quality;
:meth:`Transcriber.transcribe` takes an array, downmixes by the channel mean and resamples
with soxr 'HQ' the same way. Windowing, the network, un-windowing and note creation are
basic-pitch's own functions with the defaults of its ``predict`` (onset threshold 0.5,
frame threshold 0.3, notes of at least 127.7 ms, the melodia trick).

A transcription is an array of notes (K, 4): start s, end s, MIDI pitch, amplitude.
What is measured per stem (:func:`stem_figures`), against its context:

- **note activity**: transcribed note-seconds per 10 s (overlapping notes add up);
- **harmonic fit**: the share of the stem's note-time whose pitch class is in the
  context's *profile*: the fewest pitch classes holding :data:`PROFILE_SHARE` (90%) of the
  context's note-time (95%). A 10-s window spans two to four chords, so the tones of a
  chord heard for one bar may each hold only ~5% of the note-time: 95% keeps them, and
  still leaves out the stray classes a transcriber adds (drum hits read as low notes,
  short passing tones). On 42 corpus contexts the profile held 6.0 classes on average
  (5.5 at 90%), real parts scored 0.95 in it (0.91 at 90%) and parts of other songs 0.60
  (0.57). Also the Pearson correlation of the two 12-bin pitch-class histograms;
- **register**: the stem's median MIDI pitch, weighted by note duration;
- **rhythmic fit**: the share of the stem's onsets (note starts, merged within 20 ms)
  that fall within :data:`ONSET_TOLERANCE` of an onset of the context: its transcribed
  note starts and its detected onsets (librosa's spectral-flux onset detector, which also
  hears the drums and so the beat grid). The same share at :data:`SHIFTS` random circular
  time shifts of the stem's onsets is the chance level of that context.

Every figure of a set of stems comes with a 95% bootstrap interval (:func:`bootstrap`).
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 48_000
TRANSCRIBER_RATE = 22_050  # basic-pitch's AUDIO_SAMPLE_RATE
PROFILE_SHARE = 0.95
ONSET_TOLERANCE = 0.05  # s
ONSET_MERGE = 0.02  # s: note starts closer than this are one onset (a chord)
SHIFTS = 8
MIN_SHIFT = 0.25  # s: random shifts are drawn from [MIN_SHIFT, duration - MIN_SHIFT]
FIGURES = ("note_seconds", "in_profile", "pc_correlation", "median_pitch", "rhythm", "rhythm_shifted")
INSTALL_HINT = ("basic-pitch is not installed: pip install --no-deps basic-pitch==0.4.0 "
                "(plus librosa, pretty_midi, mir_eval, resampy>=0.4.3; scripts/install.sh does this "
                "with SIDEMAN_EXTRAS=dev)")


def _basic_pitch():
    """basic_pitch's inference and note-creation modules, imported without its chatter
    about the TensorFlow, CoreML and TFLite back ends we do not use."""
    if importlib.util.find_spec("basic_pitch") is None:
        raise ImportError(INSTALL_HINT)
    level = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        import basic_pitch
        import basic_pitch.inference as inference
        import basic_pitch.note_creation as note_creation
    finally:
        logging.disable(level)
    return basic_pitch, inference, note_creation


def model_path() -> str:
    """The ONNX network inside the basic-pitch wheel."""
    import os

    basic_pitch, _, _ = _basic_pitch()
    path = os.path.join(os.path.dirname(basic_pitch.__file__), "saved_models", "icassp_2022", "nmp.onnx")
    if not os.path.exists(path):
        raise FileNotFoundError(f"basic-pitch's ONNX model is missing at {path}; reinstall basic-pitch")
    return path


class Transcriber:
    """basic-pitch on onnxruntime: audio in, notes (K, 4) out.

    threads: onnxruntime intra-op threads (0: all cores); batch: windows per network call.
    """

    def __init__(self, threads: int = 1, batch: int = 16):
        import onnxruntime as ort

        _, self._inference, self._notes = _basic_pitch()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path(), options, providers=["CPUExecutionProvider"])
        self.batch = batch
        constants = self._inference
        self.fft_hop = constants.FFT_HOP
        self.window = constants.AUDIO_N_SAMPLES
        self.overlap_frames = 30  # as basic-pitch's run_inference
        self.min_note_frames = int(np.round(127.70 / 1000 * (TRANSCRIBER_RATE / self.fft_hop)))

    def posteriors(self, mono: np.ndarray) -> dict[str, np.ndarray]:
        """basic-pitch's frame posteriors of mono 22.05 kHz audio (S,): 'note', 'onset'
        (T, 88) and 'contour' (T, 264)."""
        overlap = self.overlap_frames * self.fft_hop
        padded = np.concatenate([np.zeros(overlap // 2, np.float32), mono.astype(np.float32)])
        windows = [w for w, _ in self._inference.window_audio_file(padded, self.window - overlap)]
        outputs: dict[str, list] = {"note": [], "onset": [], "contour": []}
        names = ["StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0"]
        for i in range(0, len(windows), self.batch):
            x = np.stack(windows[i:i + self.batch]).astype(np.float32)  # (n, AUDIO_N_SAMPLES, 1)
            for key, value in zip(("note", "onset", "contour"),
                                  self.session.run(names, {"serving_default_input_2:0": x})):
                outputs[key].append(value)
        return {k: self._inference.unwrap_output(np.concatenate(v), len(mono), self.overlap_frames)
                for k, v in outputs.items()}

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Notes (K, 4) float64 [start s, end s, MIDI pitch, amplitude] of audio (S,) or
        (C, S), channels first, sorted by start."""
        import soxr

        x = np.asarray(audio, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=0)
        if x.ndim != 1:
            raise ValueError(f"audio must be (S,) or (C, S), got shape {np.shape(audio)}")
        if not np.all(np.isfinite(x)):
            raise ValueError("audio has non-finite samples (NaN or inf)")
        mono = soxr.resample(x, sample_rate, TRANSCRIBER_RATE, quality="HQ").astype(np.float32)
        if len(mono) < self.fft_hop:
            return np.zeros((0, 4))
        with np.errstate(divide="ignore", invalid="ignore"):  # its onset rescaling divides 0/0 on silence
            _, events = self._notes.model_output_to_notes(
                self.posteriors(mono), onset_thresh=0.5, frame_thresh=0.3, min_note_len=self.min_note_frames,
                include_pitch_bends=False, melodia_trick=True)
        notes = np.array([(s, e, p, a) for s, e, p, a, _ in events], dtype=np.float64).reshape(-1, 4)
        return notes[np.argsort(notes[:, 0], kind="stable")]


# -------------------------------------------------------------------- figures


def note_seconds(notes: np.ndarray) -> float:
    """Summed duration of the notes (s)."""
    return float(np.sum(notes[:, 1] - notes[:, 0])) if len(notes) else 0.0


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Note-time per pitch class (12,), C = 0."""
    hist = np.zeros(12)
    if len(notes):
        np.add.at(hist, notes[:, 2].astype(int) % 12, notes[:, 1] - notes[:, 0])
    return hist


def pitch_class_profile(hist: np.ndarray, share: float = PROFILE_SHARE) -> np.ndarray:
    """The fewest pitch classes holding `share` of the note-time, as a mask (12,) bool
    (all False when there is no note-time). Ties keep the lower class."""
    mask = np.zeros(12, bool)
    total = hist.sum()
    if total <= 0:
        return mask
    order = np.argsort(-hist, kind="stable")
    needed = int(np.searchsorted(np.cumsum(hist[order]) / total, share - 1e-9)) + 1
    mask[order[:needed]] = True
    return mask


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The weighted median (the smallest value whose cumulative weight reaches half)."""
    if len(values) == 0 or weights.sum() <= 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def onset_events(notes: np.ndarray, merge: float = ONSET_MERGE) -> np.ndarray:
    """Note starts (s), sorted, with starts closer than `merge` to the previous kept one dropped."""
    starts = np.sort(notes[:, 0]) if len(notes) else np.zeros(0)
    kept: list[float] = []
    for t in starts:
        if not kept or t - kept[-1] >= merge:
            kept.append(float(t))
    return np.array(kept)


def detected_onsets(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Onset times (s) of audio (S,) or (C, S) by librosa's spectral-flux detector at 22.05 kHz."""
    import librosa
    import soxr

    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    mono = soxr.resample(x, sample_rate, TRANSCRIBER_RATE, quality="HQ").astype(np.float32)
    return librosa.onset.onset_detect(y=mono, sr=TRANSCRIBER_RATE, units="time")


def aligned_share(onsets: np.ndarray, reference: np.ndarray, tolerance: float = ONSET_TOLERANCE) -> float:
    """The share of `onsets` within `tolerance` of some `reference` onset (NaN without onsets)."""
    if len(onsets) == 0:
        return float("nan")
    if len(reference) == 0:
        return 0.0
    nearest = np.min(np.abs(np.asarray(onsets)[:, None] - np.asarray(reference)[None, :]), axis=1)
    return float(np.mean(nearest <= tolerance))


@dataclass(frozen=True)
class ContextNotes:
    """What a stem is measured against: the context's pitch-class histogram (12,) and
    onsets (s), and the window length (s)."""

    histogram: np.ndarray
    onsets: np.ndarray
    duration: float

    @classmethod
    def of(cls, transcriber: Transcriber, context: np.ndarray, sample_rate: int = SAMPLE_RATE) -> "ContextNotes":
        notes = transcriber.transcribe(context, sample_rate)
        onsets = np.union1d(onset_events(notes), detected_onsets(context, sample_rate))
        return cls(pitch_class_histogram(notes), onsets, context.shape[-1] / sample_rate)


def stem_figures(notes: np.ndarray, context: ContextNotes, seed: int) -> dict[str, float]:
    """The figures (:data:`FIGURES`) of one stem's notes against its context; NaN where a
    figure is undefined (no notes; no context notes for the harmonic figures; fewer than
    two onsets for the rhythmic ones). `seed` draws the random shifts."""
    hist = pitch_class_histogram(notes)
    profile = pitch_class_profile(context.histogram)
    has_harmony = hist.sum() > 0 and profile.any()
    varied = hist.std() > 0 and context.histogram.std() > 0
    onsets = onset_events(notes)
    out = {
        "note_seconds": note_seconds(notes) * 10.0 / context.duration,
        "in_profile": float(hist[profile].sum() / hist.sum()) if has_harmony else float("nan"),
        "pc_correlation": float(np.corrcoef(hist, context.histogram)[0, 1]) if has_harmony and varied else float("nan"),
        "median_pitch": weighted_median(notes[:, 2], notes[:, 1] - notes[:, 0]) if len(notes) else float("nan"),
        "rhythm": float("nan"), "rhythm_shifted": float("nan"),
    }
    if len(onsets) >= 2 and context.duration > 2 * MIN_SHIFT:
        rng = np.random.default_rng(seed)
        shifts = rng.uniform(MIN_SHIFT, context.duration - MIN_SHIFT, SHIFTS)
        out["rhythm"] = aligned_share(onsets, context.onsets)
        out["rhythm_shifted"] = float(np.mean([aligned_share((onsets + s) % context.duration, context.onsets)
                                               for s in shifts]))
    return out


def note_f1(reference: np.ndarray, estimate: np.ndarray, onset_tolerance: float = ONSET_TOLERANCE) -> float:
    """Note F-measure of `estimate` against `reference` (both (K, 4)): a note matches when
    its onset is within `onset_tolerance` s and its pitch within a quarter tone; offsets
    are ignored (mir_eval's transcription metric with offset_ratio None). 1.0 when both
    are empty, 0.0 when only one is."""
    import mir_eval

    if len(reference) == 0 or len(estimate) == 0:
        return float(len(reference) == len(estimate))
    hz = lambda n: 440.0 * 2 ** ((n[:, 2] - 69) / 12)  # noqa: E731
    interval = lambda n: np.stack([n[:, 0], np.maximum(n[:, 1], n[:, 0] + 1e-3)], axis=1)  # noqa: E731
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        interval(reference), hz(reference), interval(estimate), hz(estimate),
        onset_tolerance=onset_tolerance, offset_ratio=None)
    return float(f1)


# ----------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% bootstrap interval over n items (NaN when n is 0)."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return "-"
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}]"


def bootstrap(values, seed: int, resamples: int = 2000, level: float = 0.95,
              statistic=np.mean) -> Interval:
    """`statistic` of the finite `values` with a percentile bootstrap interval (seeded)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(x[rng.integers(0, len(x), len(x))]) for _ in range(resamples)])
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(statistic(x)), float(low), float(high), len(x))
