"""Tests for sideman.evaluation.distribution_metrics (FAD, KD, Density/Coverage, batching)."""

import math

import numpy as np
import pytest
from scipy import linalg

from sideman.evaluation import distribution_metrics as dm


def random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ------------------------------------------------------------------ Fréchet


def test_frechet_closed_form_hand_computed():
    # S1 = I, S2 = [[2,1],[1,2]] (eigenvalues 3, 1): Tr S2^(1/2) = sqrt(3) + 1.
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    s1, s2 = np.eye(2), np.array([[2.0, 1.0], [1.0, 2.0]])
    expected = 5.0 + (2.0 + 4.0) - 2.0 * (math.sqrt(3.0) + 1.0)
    assert dm.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-12)


def test_frechet_diagonal_and_singular():
    a, b = np.array([4.0, 1.0, 0.25]), np.array([1.0, 9.0, 0.0])
    mu1, mu2 = np.array([0.0, 1.0, 0.0]), np.array([3.0, 1.0, -1.0])
    expected = 9.0 + 1.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = dm.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, abs=1e-12)
    # Orthogonal rank-1 covariances: Tr((S1 S2)^(1/2)) = 0.
    assert dm.frechet_distance([0, 0], np.diag([1.0, 0.0]), [0, 0], np.diag([0.0, 1.0])) == pytest.approx(2.0)


def test_frechet_matches_sqrtm_on_non_commuting():
    rng = np.random.default_rng(1)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * covmean)
    assert dm.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fad_identical_sets_is_zero():
    x = np.random.default_rng(2).standard_normal((300, 16))
    assert dm.fad(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fad_large_samples_match_closed_form():
    rng = np.random.default_rng(3)
    d, n = 3, 200_000
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, -1.5])
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    x = rng.multivariate_normal(mu1, s1, size=n)
    y = rng.multivariate_normal(mu2, s2, size=n)
    exact = dm.frechet_distance(mu1, s1, mu2, s2)
    # Sampling error at n = 2e5 is ~0.01 here; 0.05 is a stated, safe tolerance.
    assert dm.fad(x, y) == pytest.approx(exact, abs=0.05)
    assert exact > 1.0


# ------------------------------------------------------------- kernel distance


def brute_force_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2.0 * xy


def test_kd_equals_brute_force_double_loop():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 3)) + 0.5
    expected = brute_force_mmd2(x, y)
    assert dm.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)
    # Subsets as large as the sets are permutations of them: same value each time.
    mean, std = dm.kernel_distance(x, y, n_subsets=5, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    # Unequal sizes use n(n-1) and m(m-1) separately.
    assert dm.mmd2_unbiased(x, y[:5]) == pytest.approx(brute_force_mmd2(x, y[:5]), rel=1e-12)


def test_kd_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((1500, 16)), rng.standard_normal((1500, 16))
    same_mean, same_std = dm.kernel_distance(x, y, n_subsets=20, subset_size=500, seed=0)
    shifted_mean, _ = dm.kernel_distance(x, y + 0.5, n_subsets=20, subset_size=500, seed=0)
    assert abs(same_mean) < 3.0 * same_std
    assert shifted_mean > 20.0 * max(abs(same_mean), same_std)


def test_kd_is_seeded():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((80, 4)), rng.standard_normal((80, 4))
    a = dm.kernel_distance(x, y, n_subsets=5, subset_size=20, seed=11)
    b = dm.kernel_distance(x, y, n_subsets=5, subset_size=20, seed=11)
    assert a == b


# ---------------------------------------------------------- density, coverage


def test_prdc_matches_reference_package():
    prdc_pkg = pytest.importorskip("prdc")
    rng = np.random.default_rng(7)
    real = rng.standard_normal((400, 8))
    fake = 1.2 * rng.standard_normal((300, 8)) + 0.3
    for k in (3, 5):
        ours = dm.prdc(real, fake, k=k)
        ref = prdc_pkg.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
        for name in ("precision", "recall", "density", "coverage"):
            assert getattr(ours, name) == pytest.approx(float(ref[name]), abs=1e-6), name


def test_identical_sets_full_coverage_unit_density():
    x = np.random.default_rng(8).standard_normal((200, 6))
    scores = dm.prdc(x, x, k=5)
    assert scores.coverage == 1.0
    assert scores.precision == 1.0
    assert scores.recall == 1.0
    # Each real ball (strict k-th radius) holds itself and k-1 neighbours: density = k/k.
    assert scores.density == pytest.approx(1.0)


def test_disjoint_sets_zero_density_coverage():
    rng = np.random.default_rng(9)
    real, fake = rng.standard_normal((100, 4)), rng.standard_normal((100, 4)) + 100.0
    assert dm.density_coverage(real, fake) == (0.0, 0.0)


def test_reference_set_reuse_gives_same_numbers():
    rng = np.random.default_rng(10)
    real, fake = rng.standard_normal((150, 5)), rng.standard_normal((120, 5))
    ref = dm.ReferenceSet.from_embeddings(real, k=5)
    a = dm.distribution_metrics(ref, fake, kd_subsets=5, kd_subset_size=50)
    b = dm.distribution_metrics(real, fake, kd_subsets=5, kd_subset_size=50)
    assert a == b
    assert a.fad == pytest.approx(dm.fad(real, fake))
    assert (a.density, a.coverage) == dm.density_coverage(real, fake)


# ------------------------------------------------------------- batching


def test_mean_over_batches_known_values():
    values = np.arange(12, dtype=float)
    out = dm.mean_over_batches(lambda s: {"m": values[s].mean()}, 12, n_batches=3, batch_size=4)
    assert out["m"].values == (1.5, 5.5, 9.5)
    assert out["m"].mean == pytest.approx(5.5)
    assert out["m"].std == pytest.approx(np.std([1.5, 5.5, 9.5]))
    with pytest.raises(ValueError):
        dm.batch_slices(11, 3, 4)


def test_batched_distribution_metrics_protocol():
    rng = np.random.default_rng(12)
    batch = rng.standard_normal((60, 4))
    candidates = np.concatenate([batch, batch, batch])  # three identical batches
    reference = rng.standard_normal((200, 4))
    out = dm.batched_distribution_metrics(reference, candidates, n_batches=3, batch_size=60,
                                          n_ref=150, kd_subsets=5, kd_subset_size=50)
    assert set(out) == {"kd", "kd_std", "fad", "density", "coverage", "precision", "recall"}
    for name in ("fad", "density", "coverage"):
        assert len(out[name].values) == 3
        assert out[name].std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        dm.batched_distribution_metrics(reference, candidates, 3, 60, n_ref=500)
