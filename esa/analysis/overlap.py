"""Agreement between two top-k sets (e.g. grad_x_weight vs grad_squared on the same model and seed)."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Literal

import numpy as np
import pandas as pd
from scipy import stats

from esa.analysis.stability import Key, key_set

ScoreLookup = Callable[[str, int], float]
ScoreSource = ScoreLookup | pd.DataFrame | None


@dataclass
class Overlap:
    n_a: int
    n_b: int
    n_intersection: int
    n_union: int
    jaccard: float
    overlap_coefficient: float  # |A∩B| / min(|A|, |B|)
    spearman_rho: float
    spearman_p: float
    spearman_on: Literal["union", "intersection"]
    n_spearman: int

    def as_dict(self) -> dict:
        return asdict(self)


def _own_scores(df: pd.DataFrame) -> dict[Key, float]:
    return dict(zip(zip(df["tensor"].astype(str), df["flat_index"].astype(np.int64).tolist()),
                    df["score"].astype(float).tolist()))


def _lookup(source: ScoreSource) -> ScoreLookup | None:
    if source is None:
        return None
    if isinstance(source, pd.DataFrame):
        table = _own_scores(source)
        return lambda tensor, flat: table[(tensor, flat)]
    return source


def _scores_for(keys: list[Key], own: dict[Key, float], extra: ScoreLookup | None) -> np.ndarray | None:
    """Scores of every key (own artifact first, then the full lookup); None when any is missing or NaN."""
    out = np.empty(len(keys))
    for i, key in enumerate(keys):
        value = own.get(key)
        if value is None and extra is not None:
            try:
                value = extra(*key)
            except (KeyError, IndexError):
                value = None
        if value is None or not math.isfinite(float(value)):
            return None
        out[i] = float(value)
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 3:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN, which we report as is
        res = stats.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def overlap(a: pd.DataFrame, b: pd.DataFrame, *, scores_a: ScoreSource = None,
            scores_b: ScoreSource = None) -> Overlap:
    """Jaccard, overlap coefficient and Spearman ρ between top-k artifacts ``a`` and ``b``.

    ρ is computed on the union when both metrics' scores are known for every union element (from the artifacts
    themselves, then from ``scores_a``/``scores_b``: a DataFrame with tensor, flat_index, score, or a function
    (tensor, flat_index) → score). Otherwise it falls back to the intersection, using the artifacts' own scores.
    ``spearman_on`` says which; ρ is NaN with fewer than 3 pairs.
    """
    sa, sb = key_set(a), key_set(b)
    inter, union = sa & sb, sa | sb
    own_a, own_b = _own_scores(a), _own_scores(b)
    basis: Literal["union", "intersection"] = "union"
    keys = sorted(union)
    x = _scores_for(keys, own_a, _lookup(scores_a))
    y = _scores_for(keys, own_b, _lookup(scores_b)) if x is not None else None
    if x is None or y is None:
        basis, keys = "intersection", sorted(inter)
        x = np.array([own_a[k] for k in keys])
        y = np.array([own_b[k] for k in keys])
    rho, p = _spearman(x, y)
    smaller = min(len(sa), len(sb))
    return Overlap(len(sa), len(sb), len(inter), len(union), len(inter) / len(union) if union else float("nan"),
                   len(inter) / smaller if smaller else float("nan"), rho, p, basis, len(keys))


def seed_mean_ci(values, *, n_boot: int = 2000, confidence: float = 0.95,
                 rng_seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-seed values, resampling seeds (numpy default_rng(rng_seed)).

    (NaN, NaN) with fewer than two seeds or any non-finite value: one seed says nothing about the spread.
    """
    x = np.asarray(list(values), dtype=float)
    if len(x) < 2 or not np.isfinite(x).all():
        return float("nan"), float("nan")
    rng = np.random.default_rng(rng_seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


__all__ = ["Overlap", "overlap", "seed_mean_ci"]
