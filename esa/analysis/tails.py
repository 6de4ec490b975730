"""Heavy-tail summary of score distributions across matrices (rows from ``esa.engine.score_stats``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
import pandas as pd


@dataclass
class TailSummary:
    n_tensors: int
    median_top1pct_over_median: float
    q25_top1pct_over_median: float
    q75_top1pct_over_median: float
    median_gini: float
    pooled_hill_alpha: float
    hill_m_total: int
    frac_hill_below_2: float  # share of matrices whose tail index implies infinite variance
    value: float  # the criterion-friendly number: median_top1pct_over_median
    value_name: str = "median_top1pct_over_median"

    def as_dict(self) -> dict:
        return asdict(self)


def pooled_hill(alpha: np.ndarray, m: np.ndarray) -> float:
    """Pooled Hill index: Σm / Σ(m/α).

    Each matrix's Hill sum of log-excesses over its own threshold is m/α; pooling the sums gives the Hill
    estimator on all those excesses together (an m-weighted harmonic mean of the per-matrix α).
    """
    ok = np.isfinite(alpha) & (alpha > 0) & (m > 0)
    if not ok.any():
        return float("nan")
    return float(m[ok].sum() / (m[ok] / alpha[ok]).sum())


def heavy_tail_summary(rows: Iterable[dict] | pd.DataFrame, *,
                       exclude_components: Iterable[str] = ()) -> TailSummary:
    """Across matrices: quartiles of top1pct_over_median, median Gini, pooled Hill α, share with α < 2.

    NaN entries (median 0, too few positive scores) are left out of each quantity separately. ``value`` is
    the median top-1%-mean over median: "the top 1% of weights score X times the typical weight".
    """
    df = pd.DataFrame(list(rows)) if not isinstance(rows, pd.DataFrame) else rows
    if len(df) and "component" in df:
        df = df[~df["component"].isin(list(exclude_components))]
    ratio = df["top1pct_over_median"].astype(float).dropna() if len(df) else pd.Series(dtype=float)
    q25, q50, q75 = (ratio.quantile([0.25, 0.5, 0.75]).tolist() if len(ratio) else [float("nan")] * 3)
    alpha = df["hill_alpha"].to_numpy(dtype=float) if len(df) else np.array([])
    m = df["hill_m"].to_numpy(dtype=float) if len(df) else np.array([])
    finite = np.isfinite(alpha)
    gini = df["gini"].astype(float).dropna() if len(df) else pd.Series(dtype=float)
    return TailSummary(
        n_tensors=len(df), median_top1pct_over_median=float(q50), q25_top1pct_over_median=float(q25),
        q75_top1pct_over_median=float(q75), median_gini=float(gini.median()) if len(gini) else float("nan"),
        pooled_hill_alpha=pooled_hill(alpha, m), hill_m_total=int(m[finite].sum()),
        frac_hill_below_2=float((alpha[finite] < 2).mean()) if finite.any() else float("nan"),
        value=float(q50))


__all__ = ["TailSummary", "pooled_hill", "heavy_tail_summary"]
