"""Heavy-tail summary of score distributions across matrices (rows from ``esa.engine.scoring.score_stats``), and the
graded tail excess: observed top-1%/median over the same statistic of a no-structure null, per matrix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Hashable, Iterable, Mapping

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


MIN_MATRICES = 5  # a percentile bootstrap of a median over fewer units says little
EXCESS_METHOD = ("per matrix: top1pct_over_median / null_top1pct_over_median (null = |w|^p times the data factor "
                 "shuffled within the matrix), mean over the seeds where both medians are positive; value = median "
                 "over matrices; CI = percentile bootstrap over matrices (numpy default_rng(rng_seed))")


@dataclass
class TailExcess:
    n_matrices: int  # matrices with a defined excess on at least one seed
    n_undefined: int  # matrices left out: a median ≤ 0 or no null statistic on every seed
    n_seeds: int
    value: float  # median over matrices of the seed-mean excess; 1 = no heavier than the null
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int
    median_observed: float  # median over matrices of the seed-mean observed top-1%/median (descriptive)
    median_null: float  # the same for the null statistic
    note: str = ""
    method: str = EXCESS_METHOD
    table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # per matrix: observed, null, excess

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "table"}


def _matrix_key(df: pd.DataFrame) -> pd.Series:
    """tensor, with the expert index for a slice of a packed expert tensor (which shares the tensor name)."""
    expert = df["expert"] if "expert" in df else pd.Series(None, index=df.index)
    return df["tensor"].astype(str) + expert.map(lambda e: "" if pd.isna(e) else f"[{int(e)}]")


def tail_excess(stats_by_seed: Mapping[Hashable, pd.DataFrame], *, n_boot: int = 2000, confidence: float = 0.95,
                rng_seed: int = 0, min_matrices: int = MIN_MATRICES) -> TailExcess:
    """Observed top-1%/median over its no-structure null per matrix, median over matrices, bootstrap CI.

    ``stats_by_seed`` are one metric's tensor_stats rows per seed, with the null columns of
    ``esa.engine.scoring.score_stats.null_tail_stats``. A ratio needs both medians positive (a zero or negative median
    makes top/median meaningless). No CI with fewer than ``min_matrices`` matrices (``note`` says so).
    """
    nan = float("nan")
    frames = []
    for seed, df in stats_by_seed.items():
        if "null_top1pct_over_median" not in df or not df["null_top1pct_over_median"].notna().any():
            continue
        ok = (df["median"].astype(float) > 0) & (df["null_median"].astype(float) > 0)
        obs, null = df["top1pct_over_median"].astype(float), df["null_top1pct_over_median"].astype(float)
        frames.append(pd.DataFrame({"matrix": _matrix_key(df), "layer": df["layer"], "component": df["component"],
                                    "seed": seed, "observed": obs.where(ok), "null": null.where(ok)}))
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["matrix", "layer", "component", "seed", "observed", "null"])
    long["excess"] = long["observed"] / long["null"]
    table = long.groupby("matrix", sort=False).agg(
        layer=("layer", "first"), component=("component", "first"), observed=("observed", "mean"),
        null=("null", "mean"), excess=("excess", "mean"), n_seeds=("excess", "count")).reset_index()
    defined = table[np.isfinite(table["excess"].to_numpy(float))]
    excess = defined["excess"].to_numpy(float)
    n, note = len(excess), ""
    value = float(np.median(excess)) if n else nan
    lo = hi = nan
    if not frames:
        note = "no null statistic in tensor_stats (scored without the null columns)"
    elif n < min_matrices:
        note = f"needs at least {min_matrices} matrices with a defined ratio, has {n}"
    else:
        rng = np.random.default_rng(rng_seed)
        medians = np.median(excess[rng.integers(0, n, size=(n_boot, n))], axis=1)
        lo, hi = (float(q) for q in np.quantile(medians, [(1 - confidence) / 2, (1 + confidence) / 2]))
    return TailExcess(
        n_matrices=n, n_undefined=len(table) - n, n_seeds=int(long["seed"].nunique()), value=value, ci_low=lo,
        ci_high=hi, confidence=confidence, n_boot=n_boot if np.isfinite(lo) else 0,
        median_observed=float(defined["observed"].median()) if n else nan,
        median_null=float(defined["null"].median()) if n else nan, note=note, table=table)


__all__ = ["TailSummary", "pooled_hill", "heavy_tail_summary", "TailExcess", "tail_excess", "MIN_MATRICES"]
