"""Confidence intervals for held-out evaluation metrics, resampling documents (windows of one document share
text and context, so they are not independent samples).

Input: the evaluator's per-window table (doc_id, n_tokens, n_bytes, nll_sum, n_correct).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

METHOD = ("percentile bootstrap over documents: each resample draws the seed's documents with replacement "
          "(numpy default_rng(seed)) and recomputes the token-weighted metric from their windows' sums")


def _metric(nll: np.ndarray, tokens: np.ndarray, nbytes: np.ndarray, correct: np.ndarray, name: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        per_token = nll / tokens
        if name == "ppl":
            return np.exp(per_token)
        if name == "nll_per_token":
            return per_token
        if name == "bits_per_byte":
            return nll / math.log(2) / nbytes
        if name == "top1_accuracy":
            return correct / tokens
    raise ValueError(f"no document bootstrap for metric '{name}'")


def metric_ci(frame: pd.DataFrame, name: str, *, n_boot: int = 2000, seed: int = 0,
              confidence: float = 0.95) -> tuple[float, float, int]:
    """(low, high, number of documents) of one evaluation metric; NaN bounds when undefined (non-finite NLL,
    fewer than two documents)."""
    key = frame["doc_id"] if "doc_id" in frame else frame.index.to_series()
    sums = frame.assign(_doc=key.to_numpy()).groupby("_doc")[["nll_sum", "n_tokens", "n_bytes", "n_correct"]].sum()
    n = len(sums)
    values = {c: sums[c].to_numpy(dtype=float) for c in sums.columns}
    if n < 2 or not np.isfinite(values["nll_sum"]).all():
        return math.nan, math.nan, n
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = _metric(*(values[c][idx].sum(axis=1) for c in ("nll_sum", "n_tokens", "n_bytes", "n_correct")), name)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(lo), float(hi), n


def cv_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(CV, low, high): std/mean over independent seeds, the std's interval from the chi-square distribution
    of (n−1)s²/σ² (normal seeds), divided by the mean. NaN when fewer than two finite values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or not np.isfinite(x).all() or x.mean() == 0:
        return math.nan, math.nan, math.nan
    n, s, m = len(x), float(x.std(ddof=1)), float(x.mean())
    alpha = 1 - confidence
    lo = s * math.sqrt((n - 1) / stats.chi2.ppf(1 - alpha / 2, n - 1))
    hi = s * math.sqrt((n - 1) / stats.chi2.ppf(alpha / 2, n - 1))
    return s / m, lo / abs(m), hi / abs(m)


__all__ = ["METHOD", "metric_ci", "cv_ci"]
