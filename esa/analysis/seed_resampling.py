"""Uncertainty over seeds: t-intervals of per-seed means and Welch intervals of two-model differences, and an exact
(or Monte Carlo) permutation p-value over seed labels.

With a handful of seeds a percentile bootstrap of the mean is too narrow (with 3 seeds its 95% interval is about
[min, max] of the seeds' values), so means get the Student t-interval and differences between two models Welch's.

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

BOOT_METHOD = ("t-interval over seeds of the mean of the per-seed values (Welch's interval for the difference of two "
               "models); seeds are independent draws of calibration documents")


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
    with warnings.catch_warnings():  # all-NaN values have no mean
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values) if len(values) else float("nan")
    ci = t_interval(values, confidence) if draws is not None else None
    return {"mean": number(mean), "ci": ci, "per_seed": [number(v) for v in values]}


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> list[float] | None:
    """Student t-interval of the mean of the finite values; None below 2 of them. Zero spread gives [m, m]."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return [float(x.mean() - half), float(x.mean() + half)]


def model_draws(n_seeds: int, draws: int = DRAWS, rng_seed: int = RNG_SEED) -> np.ndarray | None:
    """One set of seed draws for every statistic of one model (or of one set of paired seeds)."""
    return seed_draws(n_seeds, draws, np.random.default_rng(rng_seed)) if n_seeds >= 2 else None


def difference_ci(a: Sequence[float], b: Sequence[float], draws: int = DRAWS, rng_seed: int = RNG_SEED,
                  confidence: float = CONFIDENCE) -> list[float] | None:
    """Welch's interval of mean(a) − mean(b): the two models' seeds are independent samples with their own spread
    (``draws`` and ``rng_seed`` are kept for the callers; the interval draws nothing)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    if va + vb == 0:
        return [diff, diff]
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb))
    return [diff - half, diff + half]


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
