"""Reference statistics of `sideman eval` and the per-batch scores computed against them:
Gaussian (FAD) and set (KD, Density, Coverage) references, and the CLAP scores of a row."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sideman.evaluation.apa import apa_from_distances
from sideman.evaluation.clap_score import clap_score, clap_scores
from sideman.evaluation.distribution_metrics import (ReferenceSet, density_coverage, frechet_distance,
                                                   gaussian_stats, kernel_distance)
from sideman.evaluation.eval_config import SETTINGS, Protocol, Row


@dataclass(frozen=True)
class GaussianRef:
    """Mean (D,) and unbiased covariance (D, D) of a fixed set, for repeated Fréchet distances."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, emb) -> "GaussianRef":
        return cls(*gaussian_stats(emb))

    def distance(self, emb) -> float:
        """Squared Fréchet distance to the Gaussian fitted to `emb` (N, D), as
        `distribution_metrics.fad`. For N <= D the trace term comes from the N x N matrix
        Yc S Yc^T / (N - 1) (Yc: centred rows, S: this covariance), whose eigenvalues are
        the non-zero ones of S^1/2 S_Y S^1/2: one small eigenproblem instead of two D x D."""
        y = np.asarray(emb, np.float64)
        n = len(y)
        if n > y.shape[1]:
            mu, cov = gaussian_stats(y)
            return frechet_distance(self.mean, self.cov, mu, cov)
        if n < 2:
            raise ValueError("need at least 2 embeddings to fit a covariance")
        yc = y - y.mean(axis=0)
        m = yc @ self.cov @ yc.T / (n - 1)
        tr_sqrt = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None))))
        diff = y.mean(axis=0) - self.mean
        value = diff @ diff + np.trace(self.cov) + np.sum(yc * yc) / (n - 1) - 2.0 * tr_sqrt
        return max(float(value), 0.0)


@dataclass(frozen=True)
class Projection:
    """Projection onto the top-k principal axes of a fitted set: mean (D,), axes (D, k);
    both None for the identity (no k, or k >= D). Fréchet distances, KD's polynomial
    kernel and nearest-neighbour radii are unchanged by the axes' signs, so the SVD's
    sign convention does not matter."""

    mean: np.ndarray | None = None
    axes: np.ndarray | None = None

    @classmethod
    def fit(cls, emb: np.ndarray, k: int | None) -> "Projection":
        x = np.asarray(emb, np.float64)
        if not k or k >= x.shape[1]:
            return cls()
        if k >= len(x):
            raise ValueError(f"a {k}-d subspace needs more than {k} reference embeddings, got {len(x)}")
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(mean, vt[:k].T)

    def __call__(self, emb: np.ndarray) -> np.ndarray:
        x = np.asarray(emb, np.float64)
        return x if self.axes is None else (x - self.mean) @ self.axes


@dataclass(frozen=True)
class References:
    """The reference side of every metric in one embedding space: the real stems
    (ReferenceSet, and its Gaussian for FAD), the real mixes X and anti-reference mixes X'
    (Gaussians) with d(X, X'). With `pca`, stems are compared in the top principal
    subspace of the reference stems and mixes in that of X and X' together
    (`stem_projection`, `mix_projection`), so that sets smaller than the embedding's
    dimension still give unbiased-enough covariances."""

    stems: ReferenceSet
    stem_gaussian: GaussianRef
    mix_x: GaussianRef
    mix_xp: GaussianRef
    d_x_xp: float
    n_overlap: int
    stem_projection: Projection = Projection()
    mix_projection: Projection = Projection()

    @classmethod
    def of(cls, ref: dict[str, np.ndarray], k: int, pca: int | None = None, space: str = "") -> "References":
        """From the arrays of `Evaluation.references`; `space` '' is the CLAP space, else
        the suffix of an extra embedder's arrays."""
        key = (lambda name: f"{name}__{space}") if space else (lambda name: name)
        stem_proj = Projection.fit(ref[key("emb")], pca)
        mix_proj = Projection.fit(np.concatenate([ref[key("mix_x")], ref[key("mix_xp")]]), pca)
        stems = ReferenceSet.from_embeddings(stem_proj(ref[key("emb")]), k)
        mix_x = GaussianRef.of(mix_proj(ref[key("mix_x")]))
        mix_xp = mix_proj(ref[key("mix_xp")])
        return cls(stems, GaussianRef(stems.mean, stems.cov), mix_x, GaussianRef.of(mix_xp),
                   mix_x.distance(mix_xp), int(ref["n_overlap"]), stem_proj, mix_proj)

    def apa(self, mixes: np.ndarray) -> float:
        """APA of candidate mixes (B, D) against X and X'."""
        y = self.mix_projection(mixes)
        return apa_from_distances(self.mix_x.distance(y), self.mix_xp.distance(y), self.d_x_xp)


def first_of(*values):
    return next(v for v in values if v is not None)


def pair_key(pair) -> str:
    """Identifies a pair's target window: 'song/stem@start'."""
    return f"{pair.song_id}/{pair.target_stem}@{pair.target_start}"


def distribution_scores(refs: References, emb: np.ndarray, proto: Protocol, seed: int) -> dict[str, float]:
    """KD, FAD, Density, Coverage of candidates (B, D) against the reference stems."""
    y = refs.stem_projection(emb)
    kd, _ = kernel_distance(refs.stems.embeddings, y, proto.kd_subsets, proto.kd_subset_size, seed)
    density, coverage = density_coverage(refs.stems, y)
    return {"kd": kd, "fad": refs.stem_gaussian.distance(y), "density": density, "coverage": coverage}


def clap_part(row: Row, emb: np.ndarray, gt: dict) -> dict[str, float]:
    """CS_AA and CS_TA of candidates (B, D) with the row's ground truth (bounds: the
    target stem and its caption; the real bound has no CS_AA; the codec row's CS_AA is the
    similarity of each reconstruction to its original)."""
    if row.setting == "real":
        return {"cs_ta": clap_score(emb, gt["caption_text"])}
    setting = "ctx" if row.is_bound or row.is_codec else SETTINGS[row.setting].ground_truth
    return clap_scores(emb, setting, gt["target_audio"], gt["caption_text"],
                       gt["clap_audio"], gt["caption_text"])


