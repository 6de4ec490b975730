"""Stability of top-k sets across seeds (each seed resamples the calibration windows): Jaccard indices."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Hashable, Iterable, Mapping

import numpy as np
import pandas as pd

Key = tuple[str, int]
Selection = pd.DataFrame | Iterable[Key]

BOOT_METHOD = ("percentile bootstrap over seeds: draw S seeds with replacement (numpy default_rng(rng_seed)), "
               "take the mean Jaccard over the pairs of distinct seeds in the draw; draws with a single distinct "
               "seed are dropped")


def key_set(selection: Selection) -> frozenset[Key]:
    """The (tensor, flat_index) keys of a top-k DataFrame, or of an iterable of keys."""
    if isinstance(selection, pd.DataFrame):
        return frozenset(zip(selection["tensor"].astype(str), selection["flat_index"].astype(np.int64).tolist()))
    return frozenset(selection)


def jaccard(a: Selection, b: Selection) -> float:
    """|A∩B| / |A∪B|; NaN when both are empty (no evidence either way)."""
    sa, sb = key_set(a), key_set(b)
    union = len(sa | sb)
    return len(sa & sb) / union if union else float("nan")


@dataclass
class PairwiseJaccard:
    pairs: pd.DataFrame  # seed_a, seed_b, jaccard
    n_seeds: int
    mean: float
    min: float
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int  # resamples that contributed to the interval
    method: str = BOOT_METHOD

    def as_dict(self) -> dict[str, Any]:
        return {"n_seeds": self.n_seeds, "n_pairs": len(self.pairs), "mean": self.mean, "min": self.min,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "confidence": self.confidence,
                "n_boot": self.n_boot, "method": self.method}


def seed_draws(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_seeds) seed indices drawn with replacement: one bootstrap resample of the seeds per row."""
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def boot_means(matrix: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per resample, the mean Jaccard over the pairs of distinct seeds it drew; NaN when it drew a single seed."""
    n_boot, s = draws.shape
    sub = matrix[draws[:, :, None], draws[:, None, :]]  # same-seed pairs are NaN (diagonal)
    upper = np.triu(np.ones((s, s), dtype=bool), k=1)
    vals = np.where(upper, sub, np.nan).reshape(n_boot, -1)
    valid = ~np.all(np.isnan(vals), axis=1)
    means = np.full(n_boot, np.nan)
    means[valid] = np.nanmean(vals[valid], axis=1)
    return means


def _boot_mean(matrix: np.ndarray, n_boot: int, confidence: float, rng_seed: int) -> tuple[float, float, int]:
    means = boot_means(matrix, seed_draws(matrix.shape[0], n_boot, np.random.default_rng(rng_seed)))
    means = means[~np.isnan(means)]
    if not len(means):
        return float("nan"), float("nan"), 0
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi), len(means)


def jaccard_matrix(sets_by_seed: Mapping[Hashable, Selection]) -> np.ndarray:
    """Jaccard of every pair of seeds (in the mapping's order), NaN on the diagonal."""
    sets = [key_set(selection) for selection in sets_by_seed.values()]
    matrix = np.full((len(sets), len(sets)), np.nan)
    for i, j in combinations(range(len(sets)), 2):
        matrix[i, j] = matrix[j, i] = jaccard(sets[i], sets[j])
    return matrix


def pairwise_jaccard(sets_by_seed: Mapping[Hashable, Selection], *, n_boot: int = 2000, confidence: float = 0.95,
                     rng_seed: int = 0) -> PairwiseJaccard:
    """Jaccard for every pair of seeds, their mean and minimum, and a bootstrap CI of the mean (``BOOT_METHOD``)."""
    seeds = list(sets_by_seed)
    n = len(seeds)
    matrix = jaccard_matrix(sets_by_seed)
    rows = [{"seed_a": seeds[i], "seed_b": seeds[j], "jaccard": matrix[i, j]} for i, j in combinations(range(n), 2)]
    pairs = pd.DataFrame(rows, columns=["seed_a", "seed_b", "jaccard"])
    if n < 2:
        nan = float("nan")
        return PairwiseJaccard(pairs, n, nan, nan, nan, nan, confidence, 0)
    lo, hi, used = _boot_mean(matrix, n_boot, confidence, rng_seed)
    return PairwiseJaccard(pairs, n, float(pairs["jaccard"].mean()), float(pairs["jaccard"].min()), lo, hi,
                           confidence, used)


def stored_k(ranked: pd.DataFrame) -> int:
    """The k a ranked top-k artifact was selected with (largest rank + 1; per matrix for per_layer)."""
    return int(ranked["rank"].max()) + 1 if len(ranked) else 0


def stability_vs_k(ranked_by_seed: Mapping[Hashable, pd.DataFrame], ks: Iterable[int], **boot) -> pd.DataFrame:
    """Pairwise Jaccard of the rank prefixes (rank < k') for each k' ≤ the stored k.

    For a per_layer artifact the rank is per matrix, so the prefix is the per-matrix top-k'. Columns: k, n_seeds,
    n_pairs, mean, min, ci_low, ci_high. ``boot`` goes to ``pairwise_jaccard``.
    """
    limit = min(stored_k(df) for df in ranked_by_seed.values()) if ranked_by_seed else 0
    rows = []
    for k in sorted(set(int(k) for k in ks)):
        if k < 1 or k > limit:
            raise ValueError(f"k'={k} is outside 1..{limit} (the smallest stored k across seeds)")
        res = pairwise_jaccard({s: df[df["rank"] < k] for s, df in ranked_by_seed.items()}, **boot)
        rows.append({"k": k, "n_seeds": res.n_seeds, "n_pairs": len(res.pairs), "mean": res.mean, "min": res.min,
                     "ci_low": res.ci_low, "ci_high": res.ci_high})
    return pd.DataFrame(rows, columns=["k", "n_seeds", "n_pairs", "mean", "min", "ci_low", "ci_high"])


__all__ = ["key_set", "jaccard", "jaccard_matrix", "seed_draws", "boot_means", "PairwiseJaccard", "pairwise_jaccard",
           "stored_k", "stability_vs_k"]
