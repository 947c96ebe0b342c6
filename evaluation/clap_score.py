"""CLAP scores CS_AA and CS_TA (paper section 4.4), with the ground truth per setting.

Both scores are the mean cosine similarity between the CLAP audio embeddings of
the generated stems (N, D) and, row by row, ground-truth embeddings (N, D):
CLAP *audio* embeddings for CS_AA (intra-modality), CLAP *text* embeddings for
CS_TA (cross-modality).

Ground truth by conditioning setting (:data:`GROUND_TRUTH`). Each evaluation
item has a *target* (the stem removed from the context: the pair's target
stem, and its caption) and, when CLAP-conditioned, a *reference* (the audio whose
CLAP_A embedding conditioned the model, or the audio whose caption gave the
CLAP_T embedding, and that audio's caption):

- 'ctx+clap_a', 'clap_a' : reference audio, caption of the reference audio
  (the caption is not used for conditioning here).
- 'ctx+clap_t', 'clap_t' : audio whose caption was used, the caption used.
- 'ctx'                  : the removed stem, its caption.
- 'uncond'               : the pair's target stem, its caption.
- 'ctx+clap_a*', 'clap_a*': the audio CLAP embedding is sampled by the bridge
  without a text condition, so there is no reference; the paper does not say,
  and we use the target stem and its caption as for 'ctx' and 'uncond'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET = "target"
REFERENCE = "reference"

GROUND_TRUTH: dict[str, str] = {
    "ctx+clap_a": REFERENCE,
    "ctx+clap_t": REFERENCE,
    "ctx": TARGET,
    "clap_a": REFERENCE,
    "clap_t": REFERENCE,
    "uncond": TARGET,
    "ctx+clap_a*": TARGET,
    "clap_a*": TARGET,
}
SETTINGS = tuple(GROUND_TRUTH)


def ground_truth_source(setting: str) -> str:
    """'reference' or 'target': whose audio and caption are the ground truth for ``setting``."""
    try:
        return GROUND_TRUTH[setting]
    except KeyError:
        raise ValueError(f"unknown setting {setting!r}; expected one of {SETTINGS}") from None


def _rows(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, D) or (D,), got {np.shape(x)}")
    return arr


def cosine_similarities(a, b, eps: float = 1e-12) -> np.ndarray:
    """Row-wise cosine similarity of (N, D) and (N, D) (or (D,)) arrays -> (N,).

    A zero row has similarity 0 with everything.
    """
    x, y = _rows(a, "a"), _rows(b, "b")
    if x.shape[1] != y.shape[1] or (len(x) != len(y) and 1 not in (len(x), len(y))):
        raise ValueError(f"shapes do not match: {np.shape(a)} vs {np.shape(b)}")
    dots = np.sum(x * y, axis=1)
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return dots / np.maximum(norms, eps)


def clap_score(generated, ground_truth) -> float:
    """Mean row-wise cosine similarity between generated (N, D) and ground truth (N, D)."""
    return float(cosine_similarities(generated, ground_truth).mean())


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth CLAP embeddings for one setting: audio (N, D), text (N, D)."""

    audio: np.ndarray
    text: np.ndarray


def select_ground_truth(setting: str, target_audio, target_text,
                        reference_audio=None, reference_text=None) -> GroundTruth:
    """Pick the ground-truth embeddings for ``setting`` (see :data:`GROUND_TRUTH`).

    target_*: CLAP embeddings of the removed/target stem and its caption, (N, D).
    reference_*: of the conditioning audio and its caption, (N, D); required for
    the CLAP_A / CLAP_T settings.
    """
    if ground_truth_source(setting) == TARGET:
        return GroundTruth(np.asarray(target_audio), np.asarray(target_text))
    if reference_audio is None or reference_text is None:
        raise ValueError(f"setting {setting!r} needs reference_audio and reference_text")
    return GroundTruth(np.asarray(reference_audio), np.asarray(reference_text))


def clap_scores(generated, setting: str, target_audio, target_text,
                reference_audio=None, reference_text=None) -> dict[str, float]:
    """{'cs_aa': ..., 'cs_ta': ...} of generated audio embeddings (N, D) for ``setting``."""
    gt = select_ground_truth(setting, target_audio, target_text, reference_audio, reference_text)
    return {"cs_aa": clap_score(generated, gt.audio), "cs_ta": clap_score(generated, gt.text)}
