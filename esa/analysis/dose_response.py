"""Dose-response: does the effect grow with the perturbation level (k, noise scale, …)?

With ``boot`` (the per-level effect in each cluster-bootstrap resample of the evaluation documents, one resample
shared by every level since they are evaluated on the same windows) ρ gets a percentile CI and each level a CI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from esa.analysis.paired import percentile_ci

Effects = Sequence[float] | Sequence[Sequence[float] | np.ndarray]

SPEARMAN_METHOD = ("Spearman ρ (scipy.stats.spearmanr); p-value from scipy.stats.permutation_test over pairings "
                   "(exact up to 7 points, else n_resamples Monte-Carlo permutations), since the t approximation "
                   "is meaningless for a handful of levels")


def _rank_corr(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    # Pearson on ranks is Spearman; written vectorised so the permutation test runs in one call.
    xm = x - x.mean(axis=axis, keepdims=True)
    ym = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xm * ym).sum(axis=axis) / np.sqrt((xm ** 2).sum(axis=axis) * (ym ** 2).sum(axis=axis))


def spearman(x: Sequence[float], y: Sequence[float], *, alternative: str = "greater", n_resamples: int = 9999,
             rng_seed: int = 0) -> tuple[float, float]:
    """(ρ, permutation p-value); NaN when there are fewer than 2 points or either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    nan = float("nan")
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return nan, nan
    rho = float(stats.spearmanr(x, y).statistic)
    rx = stats.rankdata(x)
    # Permuting one sample only: n! pairings, so the test is exact whenever n! ≤ n_resamples.
    res = stats.permutation_test((stats.rankdata(y),), lambda ry, axis=-1: _rank_corr(rx, ry, axis),
                                 permutation_type="pairings", vectorized=True, n_resamples=n_resamples,
                                 alternative=alternative, rng=rng_seed)
    return rho, float(res.pvalue)


def rho_samples(levels: Sequence[float], samples: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row of ``samples`` (n_boot × n_levels) against ``levels``; NaN for a constant row.

    ±inf (a diverged level) ranks as the largest or smallest effect; a row with a NaN gives NaN.
    """
    x = np.asarray(samples, dtype=float)
    ranks = stats.rankdata(np.where(np.isnan(x), 0.0, x), axis=1)
    rho = _rank_corr(np.broadcast_to(stats.rankdata(levels), ranks.shape), ranks, axis=1)
    return np.where(np.isnan(x).any(axis=1), np.nan, rho)


@dataclass
class DoseResponse:
    status: str  # ok | inconclusive
    reason: str
    levels: list[float]
    table: pd.DataFrame  # level, n, mean, ci_low, ci_high (t interval when a level has ≥ 2 values)
    rho: float  # over the per-level means
    p: float
    monotonic: bool  # every step between consecutive levels non-decreasing (within tol)
    n_violations: int
    violations: list[tuple[float, float]]  # (level, next level) pairs where the mean drops
    rho_points: float  # over all (level, value) points, when some level has replicates
    p_points: float
    alternative: str
    confidence: float
    rho_ci_low: float = float("nan")  # percentile CI of ρ over the document resamples (with ``boot``)
    rho_ci_high: float = float("nan")
    n_boot: int = 0
    n_distinguishable: int | None = None  # levels whose CI excludes 0 (with ``boot``)
    method: str = SPEARMAN_METHOD

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["table"] = self.table.to_dict(orient="records")
        return out


def _as_groups(effects: Effects) -> list[np.ndarray]:
    return [np.atleast_1d(np.asarray(e, dtype=float)).ravel() for e in effects]


def _level_row(level: float, v: np.ndarray, confidence: float) -> dict[str, float]:
    nan = float("nan")
    lo = hi = nan
    if len(v) >= 2 and np.isfinite(v).all() and v.std() > 0:
        ci = stats.ttest_1samp(v, 0.0).confidence_interval(confidence)
        lo, hi = float(ci.low), float(ci.high)
    return {"level": level, "n": len(v), "mean": float(v.mean()) if len(v) else nan, "ci_low": lo, "ci_high": hi}


def dose_response(levels: Sequence[float], effects: Effects, *, confidence: float = 0.95,
                  alternative: str = "greater", tol: float = 0.0, n_resamples: int = 9999,
                  rng_seed: int = 0, boot: np.ndarray | None = None) -> DoseResponse:
    """Spearman ρ of effect vs level, monotonicity of the per-level means, per-level mean and CI.

    ``effects[i]`` is one number for ``levels[i]`` or several (one per seed). +inf (a diverged run) is allowed:
    it ranks as the largest effect; NaN makes the result inconclusive. ``alternative`` defaults to "greater"
    because the hypothesis is that a larger dose does more harm. ``boot`` (n_boot × len(levels), columns in the
    order of ``levels``) holds resampled per-level means: ρ's CI, the per-level CIs (replacing the t interval
    over replicates) and the count of levels distinguishable from 0 come from it.
    """
    if len(levels) != len(effects):
        raise ValueError(f"{len(levels)} levels but {len(effects)} effects")
    lv = np.asarray(levels, dtype=float)
    if len(np.unique(lv)) != len(lv):
        raise ValueError("levels must be distinct")
    order = np.argsort(lv)
    lv = lv[order]
    all_groups = _as_groups(effects)
    groups = [all_groups[i] for i in order]
    table = pd.DataFrame([_level_row(float(l), g, confidence) for l, g in zip(lv, groups)],
                         columns=["level", "n", "mean", "ci_low", "ci_high"])
    extra: dict[str, Any] = {}
    if boot is not None:
        boot = np.asarray(boot, dtype=float)[:, order]
        cis = [percentile_ci(boot[:, i], confidence) for i in range(len(lv))]
        table["ci_low"], table["ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
        apart = [lo > 0 or hi < 0 or (np.isinf(m) and m > 0) for (lo, hi), m in zip(cis, table["mean"])]
        lo, hi = percentile_ci(rho_samples(lv, boot), confidence)
        extra = dict(rho_ci_low=lo, rho_ci_high=hi, n_boot=len(boot), n_distinguishable=int(sum(apart)))
    means = table["mean"].to_numpy(dtype=float)
    nan = float("nan")
    common = dict(levels=lv.tolist(), table=table, alternative=alternative, confidence=confidence, **extra)
    if any(len(g) == 0 or np.isnan(g).any() for g in groups):
        return DoseResponse("inconclusive", "a level has no effect value or a NaN one", rho=nan, p=nan,
                            monotonic=False, n_violations=0, violations=[], rho_points=nan, p_points=nan, **common)
    with np.errstate(invalid="ignore"):
        steps = np.diff(means)  # inf − inf is NaN: two diverged levels in a row are not a drop
    drops = [(float(lv[i]), float(lv[i + 1])) for i, s in enumerate(steps) if s < -tol]
    rho, p = spearman(lv, means, alternative=alternative, n_resamples=n_resamples, rng_seed=rng_seed)
    rho_pts = p_pts = nan
    if any(len(g) > 1 for g in groups):
        x = np.concatenate([np.full(len(g), l) for l, g in zip(lv, groups)])
        rho_pts, p_pts = spearman(x, np.concatenate(groups), alternative=alternative, n_resamples=n_resamples,
                                  rng_seed=rng_seed)
    status, reason = "ok", ""
    if len(lv) < 3:
        status, reason = "inconclusive", f"{len(lv)} levels: too few for a trend"
    elif np.isnan(rho):
        status, reason = "inconclusive", "the effect is constant across levels"
    return DoseResponse(status, reason, rho=rho, p=p, monotonic=not drops, n_violations=len(drops),
                        violations=drops, rho_points=rho_pts, p_points=p_pts, **common)


@dataclass
class HierarchyCheck:
    status: str  # pass | fail | inconclusive
    holds: bool
    failed: list[str]  # the inequalities that do not hold, e.g. "random > bottom"
    values: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hierarchy(deltas: Mapping[str, float], order: Sequence[str] = ("super", "random", "bottom")) -> HierarchyCheck:
    """Checks the strict chain order[0] > order[1] > … (default super > random > bottom) on point values."""
    missing = [k for k in order if k not in deltas]
    if missing:
        raise KeyError(f"hierarchy needs {missing}")
    values = {k: float(deltas[k]) for k in order}
    if any(np.isnan(v) for v in values.values()):
        nan_keys = [k for k, v in values.items() if np.isnan(v)]
        return HierarchyCheck("inconclusive", False, [f"{k} is NaN" for k in nan_keys], values)
    failed = [f"{hi} > {lo}" for hi, lo in zip(order, order[1:]) if not values[hi] > values[lo]]
    return HierarchyCheck("fail" if failed else "pass", not failed, failed, values)


@dataclass
class HierarchyByLevel:
    table: pd.DataFrame  # level, super, random, bottom, status, failed
    n_levels: int
    n_holding: int
    all_hold: bool

    def as_dict(self) -> dict[str, Any]:
        return {"n_levels": self.n_levels, "n_holding": self.n_holding, "all_hold": self.all_hold,
                "table": self.table.to_dict(orient="records")}


def hierarchy_at_each_level(levels: Sequence[float], effects: Mapping[str, Effects],
                            order: Sequence[str] = ("super", "random", "bottom")) -> HierarchyByLevel:
    """super > random > bottom at every level; ``effects[name][i]`` is a number or replicates (their mean)."""
    means = {name: [float(np.mean(g)) if len(g) else float("nan") for g in _as_groups(effects[name])]
             for name in order}
    for name, m in means.items():
        if len(m) != len(levels):
            raise ValueError(f"{name}: {len(m)} effects for {len(levels)} levels")
    rows = []
    for i, level in enumerate(levels):
        check = hierarchy({name: means[name][i] for name in order}, order)
        rows.append({"level": float(level), **check.values, "status": check.status, "failed": "; ".join(check.failed)})
    table = pd.DataFrame(rows, columns=["level", *order, "status", "failed"]).sort_values("level", ignore_index=True)
    n_hold = int((table["status"] == "pass").sum())
    return HierarchyByLevel(table, len(table), n_hold, bool(len(table)) and n_hold == len(table))


__all__ = ["spearman", "rho_samples", "DoseResponse", "HierarchyCheck", "hierarchy", "dose_response",
           "HierarchyByLevel", "hierarchy_at_each_level"]
