"""Text-to-audio retrieval metrics on cases with a known answer."""
import numpy as np
import pytest
import torch

from sideman.training.retrieval import first_hit_ranks, relevance, retrieval_metrics


def angles(*degrees):
    """Unit 2-d vectors at the given angles: cosine similarity falls with angular distance."""
    r = np.deg2rad(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1)


def test_perfect_pairs():
    emb = np.eye(5)
    m = retrieval_metrics(emb, emb, list("abcde"), list("abcde"))
    assert m == {"R@1": 1.0, "R@10": 1.0, "mean_rank": 1.0, "median_rank": 1.0}


def test_known_ranks():
    audio = angles(0, 10, 20, 30, 40)
    text = angles(0, 12, 36)                     # nearest items: (0), (10, 20, ...), (40, 30, 20, ...)
    labels_audio = ["a", "b", "c", "d", "e"]
    # a is nearest to query a; query "c" at 12 deg sees 10 (b) first, then 20 (c): rank 2;
    # query "b" at 36 deg sees 40, 30, 20, then 10 (b): rank 4
    ranks = first_hit_ranks(text, audio, relevance(["a", "c", "b"], labels_audio))
    assert ranks.tolist() == [1, 2, 4]
    m = retrieval_metrics(text, audio, ["a", "c", "b"], labels_audio, ks=(1, 2, 3, 10))
    assert m["R@1"] == pytest.approx(1 / 3) and m["R@2"] == pytest.approx(2 / 3)
    assert m["R@3"] == pytest.approx(2 / 3) and m["R@10"] == 1.0
    assert m["mean_rank"] == pytest.approx(7 / 3) and m["median_rank"] == 2.0


def test_any_relevant_item_counts():
    audio = angles(0, 50, 100, 150)
    labels = ["bass", "drums", "bass", "keys"]
    # the query at 95 deg sees 100 (bass) first although the other bass item (0 deg) is last
    m = retrieval_metrics(angles(95), audio, ["bass"], labels)
    assert m["R@1"] == 1.0 and m["mean_rank"] == 1.0
    # the query at 40 deg sees 50 (drums) first, then 0 (bass): rank 2
    assert first_hit_ranks(angles(40), audio, relevance(["bass"], labels)).tolist() == [2]


def test_ties_count_against_the_query():
    audio = np.ones((6, 3))
    labels = ["x", "y", "y", "z", "z", "z"]
    ranks = first_hit_ranks(np.ones((3, 3)), audio, relevance(["x", "y", "z"], labels))
    assert ranks.tolist() == [6, 5, 4]           # 1 + number of irrelevant items


def test_accepts_tensors_and_any_norm():
    audio = torch.tensor(angles(0, 90, 180)) * torch.tensor([[3.0], [0.5], [7.0]])
    m = retrieval_metrics(torch.tensor(angles(170, 80)), audio, [2, 1], [0, 1, 2])
    assert m["R@1"] == 1.0


def test_relevance_matrix_and_missing_relevant_item():
    assert relevance(["a", "b"], ["b", "a", "b"]).tolist() == [[False, True, False], [True, False, True]]
    assert relevance([], ["a"]).shape == (0, 1)
    with pytest.raises(ValueError):
        retrieval_metrics(np.eye(2), np.eye(2), ["a", "q"], ["a", "b"])
