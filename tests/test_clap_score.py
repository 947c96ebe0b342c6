"""Tests for sideman.evaluation.clap_score (CS_AA, CS_TA)."""

import math

import numpy as np
import pytest

from sideman.evaluation import clap_score as cs


def test_cosine_similarities_hand_made():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0], [2.0, 2.0]])
    b = np.array([[1.0, 1.0], [0.0, 5.0], [-6.0, -8.0], [1.0, 0.0], [7.0, 7.0]])
    np.testing.assert_allclose(cs.cosine_similarities(a, b), [1 / math.sqrt(2), 0.0, -1.0, 0.0, 1.0])
    assert cs.clap_score(a, b) == pytest.approx((1 / math.sqrt(2) - 1.0 + 1.0) / 5)


def test_cosine_rejects_mismatch():
    with pytest.raises(ValueError):
        cs.cosine_similarities(np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError):
        cs.cosine_similarities(np.ones((3, 2)), np.ones((3, 3)))


EXPECTED_SOURCE = {
    "ctx+clap_a": "reference", "ctx+clap_t": "reference", "clap_a": "reference", "clap_t": "reference",
    "ctx": "target", "uncond": "target", "ctx+clap_a*": "target", "clap_a*": "target",
}


@pytest.mark.parametrize("setting", sorted(EXPECTED_SOURCE))
def test_select_ground_truth(setting):
    t_audio, t_text, r_audio, r_text = (np.full((2, 3), float(v)) for v in range(4))
    gt = cs.select_ground_truth(setting, t_audio, t_text, r_audio, r_text)
    if EXPECTED_SOURCE[setting] == "reference":
        assert gt.audio is r_audio and gt.text is r_text
    else:
        assert gt.audio is t_audio and gt.text is t_text


def test_settings_cover_the_table():
    assert set(cs.SETTINGS) == set(EXPECTED_SOURCE)
    with pytest.raises(ValueError):
        cs.ground_truth_source("ctx+text")
    with pytest.raises(ValueError):
        cs.select_ground_truth("clap_t", np.ones((1, 2)), np.ones((1, 2)))


def test_clap_scores_pick_the_right_ground_truth():
    generated = np.array([[1.0, 0.0], [0.0, 1.0]])
    target_audio = np.array([[1.0, 0.0], [0.0, 1.0]])       # cos 1, 1
    target_text = np.array([[1.0, 1.0], [1.0, 1.0]])        # cos 1/sqrt2 each
    reference_audio = np.array([[0.0, 1.0], [0.0, -1.0]])   # cos 0, -1
    reference_text = np.array([[2.0, 0.0], [0.0, 3.0]])     # cos 1, 1
    embeddings = (target_audio, target_text, reference_audio, reference_text)
    ctx = cs.clap_scores(generated, "ctx", *embeddings)
    assert ctx == pytest.approx({"cs_aa": 1.0, "cs_ta": 1 / math.sqrt(2)})
    clap_t = cs.clap_scores(generated, "ctx+clap_t", *embeddings)
    assert clap_t == pytest.approx({"cs_aa": -0.5, "cs_ta": 1.0})
