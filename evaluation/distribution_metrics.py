"""Distribution metrics of Table 1 on embedding sets: FAD, KD, Density, Coverage.

All functions take embedding sets as arrays of shape (N, D) (N items, D
dimensions, e.g. 512-d CLAP embeddings) and compute in float64. "real" /
"reference" is the set of real examples, "fake" / "candidates" the generations.

- FAD: the *squared* Fréchet distance between Gaussians fitted to the two sets
  (mean and unbiased covariance), as in the FID/FAD convention
  ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``; no square root is taken.
- KD: kernel distance (KID-style), the unbiased MMD^2 estimate with the
  polynomial kernel ``k(x, y) = (x.y / D + 1)^3``, averaged over random subsets.
- Density, Coverage (and Precision, Recall): Naeem et al. 2020, k-NN balls
  around the real items, k = 5 by default (as in the ``prdc`` package).
- :func:`mean_over_batches` / :func:`batched_distribution_metrics`: the paper's
  protocol, each metric averaged over ``n_batches`` batches of ``batch_size``
  candidates against one reference set (preset 5 x 1000 vs 5000 references).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np

DEFAULT_K = 5
KD_DEGREE = 3
KD_COEF0 = 1.0
KD_SUBSETS = 100
KD_SUBSET_SIZE = 1000
PAPER_N_BATCHES = 5
PAPER_BATCH_SIZE = 1000
PAPER_N_REF = 5000


def _as_set(x, name: str = "embeddings") -> np.ndarray:
    """``x`` as a float64 (N, D) array with N >= 1, finite values."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, D), got {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contain NaN or inf")
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}")


# ---------------------------------------------------------------- Fréchet / FAD


def gaussian_stats(emb) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of an (N, D) set, N >= 2."""
    x = _as_set(emb)
    if x.shape[0] < 2:
        raise ValueError("need at least 2 embeddings to fit a covariance")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative eigenvalues -> 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """Tr((S1 S2)^(1/2)) for symmetric PSD (D, D) matrices.

    Computed as the sum of square roots of the eigenvalues of
    ``S1^(1/2) S2 S1^(1/2)``, which is symmetric PSD and similar to S1 S2, so no
    complex arithmetic and no eps offset are needed even for singular matrices.
    """
    r = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    m = r @ np.asarray(sigma2, dtype=np.float64) @ r
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2).

    mu: (D,), sigma: (D, D) symmetric PSD. Returns
    ``||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))``, clamped at 0 to
    absorb round-off.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError("mean/covariance shapes do not match")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return max(float(value), 0.0)


def fad(emb1, emb2) -> float:
    """Fréchet Audio Distance (squared, FAD convention) between (N1, D) and (N2, D) sets."""
    mu1, s1 = gaussian_stats(emb1)
    mu2, s2 = gaussian_stats(emb2)
    return frechet_distance(mu1, s1, mu2, s2)


# ------------------------------------------------------------- kernel distance


def polynomial_kernel(x, y, degree: int = KD_DEGREE, gamma: float | None = None,
                      coef0: float = KD_COEF0) -> np.ndarray:
    """``(gamma x.y + coef0)^degree`` for (N, D) and (M, D) -> (N, M); gamma = 1/D by default."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (g * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x, y, **kernel_kwargs) -> float:
    """Unbiased MMD^2 estimate between (n, D) and (m, D) sets, n, m >= 2.

    ``sum_{i!=j} k(x_i,x_j)/(n(n-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 mean k(x_i,y_j)``
    (the cross term keeps all pairs, as in KID). Can be slightly negative.
    """
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("MMD^2 needs at least 2 items per set")
    kxx = polynomial_kernel(x, x, **kernel_kwargs)
    kyy = polynomial_kernel(y, y, **kernel_kwargs)
    kxy = polynomial_kernel(x, y, **kernel_kwargs)
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def kernel_distance(real, fake, n_subsets: int = KD_SUBSETS, subset_size: int = KD_SUBSET_SIZE,
                    seed: int | np.random.Generator | None = 0, **kernel_kwargs) -> tuple[float, float]:
    """KD: mean and std (ddof=0) of unbiased MMD^2 over random subsets.

    real: (N1, D), fake: (N2, D). Each of ``n_subsets`` draws takes
    ``min(subset_size, N1, N2)`` items without replacement from each set
    (``rng = np.random.default_rng(seed)``). kernel_kwargs go to
    :func:`polynomial_kernel` (default degree 3, gamma 1/D, coef0 1).
    """
    x, y = _as_set(real, "real"), _as_set(fake, "fake")
    _check_same_dim(x, y)
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets)
    for i in range(n_subsets):
        xi = x[rng.choice(len(x), size, replace=False)]
        yi = y[rng.choice(len(y), size, replace=False)]
        values[i] = mmd2_unbiased(xi, yi, **kernel_kwargs)
    return float(values.mean()), float(values.std())


# ------------------------------------------------ density / coverage (Naeem 20)


def pairwise_distances(x, y, chunk: int = 2048) -> np.ndarray:
    """Euclidean distances (N, M) between (N, D) and (M, D), via BLAS in row chunks."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    y2 = np.einsum("ij,ij->i", y, y)
    out = np.empty((len(x), len(y)))
    for start in range(0, len(x), chunk):
        xs = x[start:start + chunk]
        d2 = np.einsum("ij,ij->i", xs, xs)[:, None] + y2[None, :] - 2.0 * (xs @ y.T)
        out[start:start + chunk] = np.sqrt(np.clip(d2, 0.0, None))
    return out


def knn_radii(emb, k: int = DEFAULT_K, chunk: int = 2048) -> np.ndarray:
    """Distance of each item of an (N, D) set to its k-th nearest other item, (N,).

    The item itself counts as its own 0-th neighbour (as in ``prdc``). N > k.
    """
    x = _as_set(emb)
    if not 1 <= k < len(x):
        raise ValueError(f"k={k} needs 1 <= k < N={len(x)}")
    radii = np.empty(len(x))
    for start in range(0, len(x), chunk):
        d = pairwise_distances(x[start:start + chunk], x)
        radii[start:start + chunk] = np.partition(d, k, axis=1)[:, k]
    return radii


@dataclass(frozen=True)
class ReferenceSet:
    """A real embedding set with what every comparison against it reuses.

    embeddings: (M, D) float64; mean: (D,); cov: (D, D); radii: (M,) k-NN radii.
    """

    embeddings: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    radii: np.ndarray
    k: int

    @classmethod
    def from_embeddings(cls, emb, k: int = DEFAULT_K) -> "ReferenceSet":
        x = _as_set(emb, "reference")
        mean, cov = gaussian_stats(x)
        return cls(embeddings=x, mean=mean, cov=cov, radii=knn_radii(x, k), k=k)


@dataclass(frozen=True)
class PRDC:
    """Precision, recall, density, coverage (Naeem et al. 2020), all floats."""

    precision: float
    recall: float
    density: float
    coverage: float


def _density_coverage(ref: ReferenceSet, fake: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(precision, density, coverage, real-fake distances (M, N)) for a prepared reference."""
    d = pairwise_distances(ref.embeddings, fake)
    inside = d < ref.radii[:, None]
    precision = float(inside.any(axis=0).mean())
    density = float(inside.sum(axis=0).mean() / ref.k)
    coverage = float((d.min(axis=1) < ref.radii).mean())
    return precision, density, coverage, d


def prdc(real, fake, k: int = DEFAULT_K) -> PRDC:
    """Precision, recall, density and coverage of ``fake`` (N, D) w.r.t. ``real`` (M, D).

    real: (M, D) array or a :class:`ReferenceSet` (whose k then applies).
    Strict inequalities and k-th neighbour radii as in ``prdc.compute_prdc``.
    Recall needs N > k (k-NN radii of the fakes). Density can exceed 1.
    """
    ref = real if isinstance(real, ReferenceSet) else ReferenceSet.from_embeddings(real, k)
    y = _as_set(fake, "fake")
    _check_same_dim(ref.embeddings, y)
    precision, density, coverage, d = _density_coverage(ref, y)
    recall = float((d < knn_radii(y, ref.k)[None, :]).any(axis=1).mean())
    return PRDC(precision=precision, recall=recall, density=density, coverage=coverage)


def density_coverage(real, fake, k: int = DEFAULT_K) -> tuple[float, float]:
    """(density, coverage) of ``fake`` (N, D) w.r.t. ``real`` (M, D) or a ReferenceSet."""
    ref = real if isinstance(real, ReferenceSet) else ReferenceSet.from_embeddings(real, k)
    y = _as_set(fake, "fake")
    _check_same_dim(ref.embeddings, y)
    _, density, coverage, _ = _density_coverage(ref, y)
    return density, coverage


# --------------------------------------------------------------- all together


@dataclass(frozen=True)
class DistributionMetrics:
    """Table-1 distribution metrics of one candidate set against a reference.

    kd / kd_std: KD mean and std over subsets; fad: squared Fréchet distance;
    density, coverage, precision, recall: Naeem et al. 2020.
    """

    kd: float
    kd_std: float
    fad: float
    density: float
    coverage: float
    precision: float
    recall: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def distribution_metrics(reference, candidates, k: int = DEFAULT_K, kd_subsets: int = KD_SUBSETS,
                         kd_subset_size: int = KD_SUBSET_SIZE, seed: int = 0) -> DistributionMetrics:
    """All distribution metrics of ``candidates`` (N, D) against ``reference``.

    reference: (M, D) array or a :class:`ReferenceSet` (prepare it once to reuse
    its statistics across batches; its own k then applies). ``seed`` drives the
    KD subsets.
    """
    ref = reference if isinstance(reference, ReferenceSet) else ReferenceSet.from_embeddings(reference, k)
    y = _as_set(candidates, "candidates")
    _check_same_dim(ref.embeddings, y)
    mu, cov = gaussian_stats(y)
    kd_mean, kd_std = kernel_distance(ref.embeddings, y, kd_subsets, kd_subset_size, seed)
    scores = prdc(ref, y)
    return DistributionMetrics(
        kd=kd_mean, kd_std=kd_std, fad=frechet_distance(ref.mean, ref.cov, mu, cov),
        density=scores.density, coverage=scores.coverage,
        precision=scores.precision, recall=scores.recall,
    )


# ------------------------------------------------------ mean over batches


@dataclass(frozen=True)
class MeanStd:
    """Mean and std (ddof=0) of a metric over batches; values: (n_batches,)."""

    mean: float
    std: float
    values: tuple[float, ...]


def batch_slices(n_items: int, n_batches: int, batch_size: int) -> list[slice]:
    """Consecutive, disjoint slices ``[i*batch_size, (i+1)*batch_size)`` of the items.

    Raises ValueError when ``n_items < n_batches * batch_size``.
    """
    if n_batches < 1 or batch_size < 1:
        raise ValueError("n_batches and batch_size must be positive")
    if n_items < n_batches * batch_size:
        raise ValueError(f"{n_items} items cannot fill {n_batches} batches of {batch_size}")
    return [slice(i * batch_size, (i + 1) * batch_size) for i in range(n_batches)]


def mean_over_batches(metric_fn: Callable[[slice], Mapping[str, float]], n_items: int,
                      n_batches: int = PAPER_N_BATCHES,
                      batch_size: int = PAPER_BATCH_SIZE) -> dict[str, MeanStd]:
    """Average any per-batch metrics over consecutive batches (the paper's protocol).

    metric_fn(batch) gets a slice into the caller's candidate arrays and returns
    {name: value}; works for distribution metrics, APA and CLAP scores alike.
    Returns {name: MeanStd}.
    """
    results = [dict(metric_fn(s)) for s in batch_slices(n_items, n_batches, batch_size)]
    out = {}
    for name in results[0]:
        values = np.array([r[name] for r in results], dtype=np.float64)
        out[name] = MeanStd(float(values.mean()), float(values.std()), tuple(values.tolist()))
    return out


def batched_distribution_metrics(reference, candidates, n_batches: int = PAPER_N_BATCHES,
                                 batch_size: int = PAPER_BATCH_SIZE, n_ref: int | None = PAPER_N_REF,
                                 k: int = DEFAULT_K, kd_subsets: int = KD_SUBSETS,
                                 kd_subset_size: int = KD_SUBSET_SIZE,
                                 seed: int = 0) -> dict[str, MeanStd]:
    """Table-1 protocol: KD, FAD, Density, Coverage (+P/R) per batch, then mean/std.

    reference: (M, D) real embeddings; candidates: (N, D) with
    N >= n_batches * batch_size (consecutive batches). With ``n_ref`` set,
    n_ref references are drawn without replacement (seeded) when M > n_ref;
    M < n_ref raises ValueError; ``n_ref=None`` uses all M.
    Defaults: 5 batches of 1000 against 5000 references. Returns {name: MeanStd}.
    """
    y = _as_set(candidates, "candidates")
    ref_emb = _as_set(reference, "reference")
    rng = np.random.default_rng(seed)
    if n_ref is not None:
        if len(ref_emb) < n_ref:
            raise ValueError(f"reference has {len(ref_emb)} items, n_ref={n_ref}")
        ref_emb = ref_emb[np.sort(rng.choice(len(ref_emb), n_ref, replace=False))]
    ref = ReferenceSet.from_embeddings(ref_emb, k)
    seeds = rng.integers(0, 2**32, size=n_batches)
    slices = batch_slices(len(y), n_batches, batch_size)
    seed_of = {s.start: int(sd) for s, sd in zip(slices, seeds)}

    def one_batch(s: slice) -> dict[str, float]:
        return distribution_metrics(ref, y[s], k, kd_subsets, kd_subset_size, seed_of[s.start]).as_dict()

    return mean_over_batches(one_batch, len(y), n_batches, batch_size)
