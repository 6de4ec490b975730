"""Do heads that hold more critical weights attend differently? Spearman's rho between per-head critical counts
and a per-head attention statistic, with a bootstrap confidence interval.

Heads of one layer are not independent: they share the layer's input, its norm and its place in the depth, so
counts and statistics cluster by layer. Resampling single heads would then treat correlated heads as separate
evidence and give too narrow an interval. The default resamples whole layers (every head of a drawn layer comes
along): a cluster bootstrap, honest as long as there are enough layers; ``resample="head"`` gives the naive one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class HeadCorrelation:
    count: str  # the counts column (q, k, v, o or total)
    stat: str  # the statistic column (entropy, sink_share)
    rho: float
    p_value: float  # Spearman's test, which assumes independent heads: read with the clustered interval
    ci_low: float
    ci_high: float
    confidence: float
    resample: str  # layer (clusters) or head
    n_heads: int
    n_layers: int
    n_resamples: int
    n_undefined: int  # resamples whose counts or statistic came out constant (no rho); any makes the CI NaN


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan  # a constant side has no ranks to correlate
    return float(stats.spearmanr(x, y).statistic)


def head_correlation(counts: pd.DataFrame, head_stats: pd.DataFrame, *, count: str = "total",
                     stat: str = "entropy", resample: Literal["layer", "head"] = "layer", n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0,
                     method: Literal["percentile", "basic", "BCa"] = "percentile") -> HeadCorrelation:
    """Spearman's rho between ``counts[count]`` (``critical_head_counts``) and ``head_stats[stat]``
    (``head_attention_stats``), joined on (layer, head), with a ``scipy.stats.bootstrap`` interval.

    A resample whose counts or statistic are constant has no rho; such resamples (``n_undefined``) make the interval
    NaN, which says that there are too few layers (or heads) with differing counts to bound it.
    """
    joined = counts[["layer", "head", count]].merge(head_stats[["layer", "head", stat]], on=["layer", "head"])
    if not len(joined):
        raise ValueError("counts and head statistics share no (layer, head)")
    x = joined[count].to_numpy(np.float64)
    y = joined[stat].to_numpy(np.float64)
    layer = joined["layer"].to_numpy(np.int64)
    layers = np.unique(layer)
    rho = _rho(x, y)
    p_value = float(stats.spearmanr(x, y).pvalue) if not math.isnan(rho) else math.nan
    if resample == "layer":
        rows_of = [np.flatnonzero(layer == lay) for lay in layers]
        units = np.arange(len(layers))

        def statistic(drawn: np.ndarray) -> float:
            rows = np.concatenate([rows_of[int(i)] for i in drawn])
            return _rho(x[rows], y[rows])
    elif resample == "head":
        units = np.arange(len(joined))

        def statistic(drawn: np.ndarray) -> float:
            return _rho(x[drawn.astype(np.int64)], y[drawn.astype(np.int64)])
    else:
        raise ValueError(f"resample must be 'layer' or 'head', got {resample!r}")
    low = high = math.nan
    undefined = 0
    if len(units) >= 2 and not math.isnan(rho):
        # scipy warns about any NaN interval (naming BCa whatever the method); n_undefined says why instead.
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            result = stats.bootstrap((units,), statistic, vectorized=False, n_resamples=n_resamples,
                                     confidence_level=confidence, method=method, rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        undefined = int(np.isnan(result.bootstrap_distribution).sum())
    return HeadCorrelation(count, stat, rho, p_value, low, high, confidence, resample, len(joined), len(layers),
                           n_resamples, undefined)


__all__ = ["HeadCorrelation", "head_correlation"]
