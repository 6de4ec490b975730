"""Resampling over seeds: percentile bootstrap CIs of per-seed means and of two-model differences, and an exact
(or Monte Carlo) permutation p-value over seed labels.

Seeds draw disjoint calibration documents, so they are the independent replicates: every resample draws seeds,
never weights or windows. Fewer than 2 seeds give no CI (None), never an invented one.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import Sequence

import numpy as np

DRAWS = 2000
RNG_SEED = 2000
CONFIDENCE = 0.95
PERMUTATION_LIMIT = 20000  # enumerate every relabeling up to this many, else draw this many at random

BOOT_METHOD = ("percentile bootstrap over seeds: each draw resamples a model's seeds with replacement "
               "(numpy default_rng(rng_seed)) and takes the mean of the per-seed values")


def settings(draws: int = DRAWS, rng_seed: int = RNG_SEED, confidence: float = CONFIDENCE) -> dict:
    """The bootstrap settings as recorded next to every CI."""
    return {"method": BOOT_METHOD, "draws": draws, "rng_seed": rng_seed, "confidence": confidence}


def number(x) -> float | None:
    """A JSON-ready float: None for NaN or ±inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def seed_draws(n_seeds: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n_seeds) seed indices drawn with replacement."""
    return rng.integers(0, n_seeds, size=(draws, n_seeds))


def percentile(samples: np.ndarray, confidence: float) -> list[float] | None:
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return None
    a = (1 - confidence) / 2
    return [float(np.quantile(x, a)), float(np.quantile(x, 1 - a))]


def mean_stat(per_seed: Sequence[float], draws: np.ndarray | None, confidence: float = CONFIDENCE) -> dict:
    """{mean, ci, per_seed}: the mean over seeds and its bootstrap CI from pre-drawn seed indices (shared by all
    statistics of the same seeds, so they are resampled together); ci None with fewer than 2 seeds."""
    values = np.asarray(per_seed, dtype=float)
    ci = None
    with warnings.catch_warnings():  # a draw of seeds that are all NaN has no mean: NaN, dropped by percentile
        warnings.simplefilter("ignore", RuntimeWarning)
        if draws is not None and len(values) >= 2:
            ci = percentile(np.nanmean(values[draws], axis=1), confidence)
        mean = np.nanmean(values) if len(values) else float("nan")
    return {"mean": number(mean), "ci": ci, "per_seed": [number(v) for v in values]}


def model_draws(n_seeds: int, draws: int = DRAWS, rng_seed: int = RNG_SEED) -> np.ndarray | None:
    """One set of seed draws for every statistic of one model (or of one set of paired seeds)."""
    return seed_draws(n_seeds, draws, np.random.default_rng(rng_seed)) if n_seeds >= 2 else None


def difference_ci(a: Sequence[float], b: Sequence[float], draws: int = DRAWS, rng_seed: int = RNG_SEED,
                  confidence: float = CONFIDENCE) -> list[float] | None:
    """CI of mean(a) − mean(b), each model's seeds resampled independently (they are different models)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(rng_seed)
    boot_a = a[seed_draws(len(a), draws, rng)].mean(axis=1)
    boot_b = b[seed_draws(len(b), draws, rng)].mean(axis=1)
    return percentile(boot_a - boot_b, confidence)


def permutation_p(a: Sequence[float], b: Sequence[float], limit: int = PERMUTATION_LIMIT,
                  rng_seed: int = RNG_SEED) -> dict:
    """Permutation test of mean(a) − mean(b) over the seed labels: {p_greater, p_less, p_two_sided, exact,
    n_relabelings, min_p}.

    Exact (every split of the pooled values into groups of the two sizes enumerated) when there are at most
    ``limit`` splits, else ``limit`` random splits with p = (1 + hits) / (1 + limit). With n seeds per model the
    smallest exact one-sided p is 1 / C(2n, n) (n = 3: 0.05; n = 5: ≈ 0.004).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pooled, n_a = np.concatenate([a, b]), len(a)
    total = math.comb(len(pooled), n_a)
    observed = a.mean() - b.mean()
    exact = total <= limit
    if exact:
        mask = np.zeros((total, len(pooled)), dtype=bool)
        for i, chosen in enumerate(combinations(range(len(pooled)), n_a)):
            mask[i, list(chosen)] = True
    else:
        rng = np.random.default_rng(rng_seed)
        order = np.argsort(rng.random((limit, len(pooled))), axis=1)
        mask = np.zeros((limit, len(pooled)), dtype=bool)
        np.put_along_axis(mask, order[:, :n_a], True, axis=1)
    diffs = (mask * pooled).sum(axis=1) / n_a - (~mask * pooled).sum(axis=1) / len(b)
    tol = 1e-12 * max(1.0, abs(observed))  # the identity split must count as a hit despite rounding
    hits = {"p_greater": diffs >= observed - tol, "p_less": diffs <= observed + tol,
            "p_two_sided": np.abs(diffs) >= abs(observed) - tol}
    if exact:
        p = {key: float(hit.mean()) for key, hit in hits.items()}
    else:
        p = {key: float((1 + hit.sum()) / (1 + limit)) for key, hit in hits.items()}
    return {**p, "exact": exact, "n_relabelings": int(total if exact else limit),
            "min_p": (1 / total) if exact else 1 / (1 + limit)}
