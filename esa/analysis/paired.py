"""Paired statistics on per-window NLL tables (baseline vs perturbed conditions on the same windows).

Input tables are the evaluator's per-sequence output: one row per window with ``window_id``, ``n_tokens`` and
``nll_sum``; ``nll_sum / n_tokens`` is the window's mean NLL. The window is the unit of analysis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

REQUIRED = ("window_id", "n_tokens", "nll_sum")
DELTA_COLUMNS = ["window_id", "n_tokens", "base_nll", "cond_nll", "delta_nll"]

RATIO_METHOD = ("paired percentile bootstrap over windows: each resample draws window ids with replacement "
                "(numpy default_rng(seed)), the same draw for baseline, super and control; PPLs are token-weighted "
                "on the draw; the CI is over the resamples where ΔPPL(control) > 0")


# ---------------------------------------------------------------- tables and token-weighted perplexity

def _check_table(df: pd.DataFrame, name: str) -> None:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{name} table lacks columns {missing}")
    dup = df["window_id"].duplicated()
    if dup.any():
        raise ValueError(f"{name} table repeats window ids, e.g. {df.loc[dup, 'window_id'].iloc[0]!r}")


def _aligned(baseline: pd.DataFrame, others: Mapping[str, pd.DataFrame]) -> tuple[pd.Series, np.ndarray,
                                                                                   dict[str, np.ndarray]]:
    """Window ids and token counts in the baseline's order, and every table's nll_sum aligned to them.

    Pairing is only valid on identical windows, so a differing window set or token count is an error.
    """
    _check_table(baseline, "baseline")
    ids = baseline["window_id"]
    tokens = baseline["n_tokens"].to_numpy(dtype=np.int64)
    nll = {"baseline": baseline["nll_sum"].to_numpy(dtype=float)}
    base_index = pd.Index(ids)
    for name, df in others.items():
        _check_table(df, name)
        other = pd.Index(df["window_id"])
        if len(other) != len(base_index) or not base_index.isin(other).all():
            only_base = base_index.difference(other)
            only_other = other.difference(base_index)
            raise ValueError(f"{name} and baseline are not on the same windows: {len(only_base)} only in baseline, "
                             f"{len(only_other)} only in {name} (e.g. {list(only_base[:2]) + list(only_other[:2])})")
        df = df.set_index("window_id").loc[ids]
        if not np.array_equal(df["n_tokens"].to_numpy(dtype=np.int64), tokens):
            raise ValueError(f"{name} and baseline disagree on n_tokens for some windows")
        nll[name] = df["nll_sum"].to_numpy(dtype=float)
    return ids, tokens, nll


def _ppl(nll_sum: np.ndarray, n_tokens: np.ndarray) -> float:
    total = float(n_tokens.sum())
    if total <= 0 or not np.isfinite(nll_sum).all():
        return float("nan")
    with np.errstate(over="ignore"):
        return float(np.exp(nll_sum.sum() / total))


def ppl(df: pd.DataFrame) -> float:
    """exp(Σnll_sum / Σn_tokens): token-weighted, never a mean of per-window PPLs.

    NaN when any window diverged (non-finite nll_sum) or there are no tokens, as in the evaluator's summary.
    """
    return _ppl(df["nll_sum"].to_numpy(dtype=float), df["n_tokens"].to_numpy(dtype=np.int64))


def delta_table(baseline_df: pd.DataFrame, condition_df: pd.DataFrame) -> pd.DataFrame:
    """Per-window mean NLL under baseline and condition, joined on window_id, and their difference."""
    ids, tokens, nll = _aligned(baseline_df, {"condition": condition_df})
    with np.errstate(invalid="ignore"):
        base = nll["baseline"] / tokens
        cond = nll["condition"] / tokens
        delta = cond - base
    return pd.DataFrame({"window_id": ids.to_numpy(), "n_tokens": tokens, "base_nll": base, "cond_nll": cond,
                         "delta_nll": delta}, columns=DELTA_COLUMNS)


def delta_ppl(baseline_df: pd.DataFrame, condition_df: pd.DataFrame) -> float:
    """PPL(condition) − PPL(baseline) on the same windows."""
    _, tokens, nll = _aligned(baseline_df, {"condition": condition_df})
    return _ppl(nll["condition"], tokens) - _ppl(nll["baseline"], tokens)


# ---------------------------------------------------------------- ΔPPL ratio with a paired bootstrap

@dataclass
class RatioCI:
    status: str  # ok | unstable | undefined | diverged
    reason: str
    ratio: float
    ci_low: float
    ci_high: float
    confidence: float
    ppl_baseline: float
    ppl_super: float
    ppl_control: float
    delta_super: float
    delta_control: float
    n_windows: int
    n_boot: int
    n_boot_defined: int  # resamples with ΔPPL(control) > 0, the ones the CI uses
    frac_control_nonpositive: float
    n_nonfinite: dict[str, int] = field(default_factory=dict)
    method: str = RATIO_METHOD

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _boot_ppl(nll: dict[str, np.ndarray], tokens: np.ndarray, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    n = len(tokens)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))  # bounds the index matrix to ~32 MB
    out: dict[str, list[np.ndarray]] = {k: [] for k in nll}
    done = 0
    while done < n_boot:
        idx = rng.integers(0, n, size=(min(chunk, n_boot - done), n))
        tok = tokens[idx].sum(axis=1)
        for k, v in nll.items():
            with np.errstate(over="ignore"):
                out[k].append(np.exp(v[idx].sum(axis=1) / tok))
        done += idx.shape[0]
    return {k: np.concatenate(v) for k, v in out.items()}


def ratio_ci(baseline: pd.DataFrame, super_df: pd.DataFrame, control_df: pd.DataFrame, *, n_boot: int = 2000,
             seed: int, confidence: float = 0.95) -> RatioCI:
    """ΔPPL(super) / ΔPPL(control) with a paired percentile bootstrap CI (``RATIO_METHOD``).

    A ratio with a denominator near zero is unstable: ``frac_control_nonpositive`` is the share of resamples where
    ΔPPL(control) ≤ 0. Above (1 − confidence)/2 the interval's upper end is really unbounded, so the status is
    ``unstable``; a non-positive point denominator gives ``undefined``. Any non-finite NLL gives ``diverged``,
    with counts per table and no numbers.
    """
    _, tokens, nll = _aligned(baseline, {"super": super_df, "control": control_df})
    nan = float("nan")
    nonfinite = {k: int((~np.isfinite(v)).sum()) for k, v in nll.items()}
    empty = dict(ratio=nan, ci_low=nan, ci_high=nan, confidence=confidence, n_windows=len(tokens), n_boot=0,
                 n_boot_defined=0, frac_control_nonpositive=nan, n_nonfinite=nonfinite)
    p = {k: _ppl(v, tokens) for k, v in nll.items()}
    if any(nonfinite.values()) or not all(np.isfinite(list(p.values()))):
        bad = ", ".join(f"{k}: {c}" for k, c in nonfinite.items() if c) or "PPL overflow"
        return RatioCI("diverged", f"non-finite NLL ({bad} windows)", ppl_baseline=nan, ppl_super=nan,
                       ppl_control=nan, delta_super=nan, delta_control=nan, **empty)
    d_super, d_control = p["super"] - p["baseline"], p["control"] - p["baseline"]
    point = dict(ppl_baseline=p["baseline"], ppl_super=p["super"], ppl_control=p["control"], delta_super=d_super,
                 delta_control=d_control)
    if len(tokens) < 2:
        return RatioCI("undefined", "fewer than 2 windows: no bootstrap", **point, **empty)

    boot = _boot_ppl(nll, tokens, n_boot, seed)
    den = boot["control"] - boot["baseline"]
    ok = den > 0
    frac = float(1 - ok.mean())
    empty.update(n_boot=n_boot, n_boot_defined=int(ok.sum()), frac_control_nonpositive=frac)
    if d_control <= 0:
        return RatioCI("undefined", f"ΔPPL(control) = {d_control:.4g} ≤ 0: the ratio has no meaning",
                       **point, **empty)
    ratio = d_super / d_control
    alpha = (1 - confidence) / 2
    ratios = (boot["super"] - boot["baseline"])[ok] / den[ok]
    lo, hi = (float(q) for q in np.quantile(ratios, [alpha, 1 - alpha]))
    if frac > alpha:
        status, reason = "unstable", (f"ΔPPL(control) ≤ 0 in {frac:.1%} of resamples (> {alpha:.1%}): the ratio's "
                                      "upper bound is unbounded; the CI shown is over the other resamples only")
    else:
        status = "ok"
        reason = f"ΔPPL(control) ≤ 0 in {frac:.1%} of resamples" if frac else ""
    empty.update(ratio=ratio, ci_low=lo, ci_high=hi)
    return RatioCI(status, reason, **point, **empty)


# ---------------------------------------------------------------- paired tests on per-window ΔNLL

@dataclass
class PairedTest:
    kind: str  # paired (a − b > 0) | one_sample (Δ > 0)
    status: str  # ok | inconclusive | diverged
    reason: str
    n: int
    n_nonzero: int  # the Wilcoxon test drops zero differences
    mean_diff: float
    sd_diff: float
    ci_low: float  # two-sided t interval of the mean difference
    ci_high: float
    confidence: float
    cohen_dz: float  # mean(d) / sd(d), ddof=1
    t_stat: float
    t_p: float
    wilcoxon_stat: float
    wilcoxon_p: float
    alternative: str = "greater"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _deltas(x: pd.DataFrame | Sequence[float] | np.ndarray) -> tuple[pd.Index | None, np.ndarray]:
    if isinstance(x, pd.DataFrame):
        return pd.Index(x["window_id"]), x["delta_nll"].to_numpy(dtype=float)
    return None, np.asarray(x, dtype=float).ravel()


def _test(kind: str, d: np.ndarray, run_t, run_w, confidence: float) -> PairedTest:
    nan = float("nan")
    n = len(d)
    base = dict(kind=kind, n=n, confidence=confidence, ci_low=nan, ci_high=nan, cohen_dz=nan, t_stat=nan,
                t_p=nan, wilcoxon_stat=nan, wilcoxon_p=nan)
    bad = int((~np.isfinite(d)).sum())
    if bad:
        return PairedTest(status="diverged", reason=f"{bad} of {n} windows have non-finite ΔNLL", n_nonzero=0,
                          mean_diff=nan, sd_diff=nan, **base)
    nonzero = int((d != 0).sum())
    mean = float(d.mean()) if n else nan
    sd = float(d.std(ddof=1)) if n > 1 else nan
    if n < 2 or sd == 0:
        why = "fewer than 2 windows" if n < 2 else "the differences have zero variance"
        return PairedTest(status="inconclusive", reason=why, n_nonzero=nonzero, mean_diff=mean, sd_diff=sd, **base)
    t = run_t("greater")
    ci = run_t("two-sided").confidence_interval(confidence)
    w = run_w("greater")
    base.update(ci_low=float(ci.low), ci_high=float(ci.high), cohen_dz=mean / sd, t_stat=float(t.statistic),
                t_p=float(t.pvalue), wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue))
    return PairedTest(status="ok", reason="", n_nonzero=nonzero, mean_diff=mean, sd_diff=sd, **base)


def compare_paired(delta_a: pd.DataFrame | Sequence[float] | np.ndarray,
                   delta_b: pd.DataFrame | Sequence[float] | np.ndarray, *, confidence: float = 0.95) -> PairedTest:
    """Is condition a worse than condition b on the same windows? Tests d = Δa − Δb > 0.

    ``delta_a``/``delta_b`` are ``delta_table`` outputs (joined on window_id) or arrays in the same window order.
    Paired Wilcoxon signed-rank and paired t-test (both one-sided, "greater"), Cohen's d_z, and a two-sided
    t interval of mean(d).
    """
    ids_a, a = _deltas(delta_a)
    ids_b, b = _deltas(delta_b)
    if ids_a is not None and ids_b is not None:
        if len(ids_a) != len(ids_b) or not ids_a.isin(ids_b).all() or ids_a.has_duplicates:
            raise ValueError("the two conditions are not on the same windows")
        b = pd.Series(b, index=ids_b).loc[ids_a].to_numpy()
    elif len(a) != len(b):
        raise ValueError(f"unequal lengths: {len(a)} vs {len(b)}")
    d = a - b
    return _test("paired", d, lambda alt: stats.ttest_rel(a, b, alternative=alt),
                 lambda alt: stats.wilcoxon(a, b, alternative=alt), confidence)


def compare_to_baseline(delta: pd.DataFrame | Sequence[float] | np.ndarray, *,
                        confidence: float = 0.95) -> PairedTest:
    """Does a condition raise NLL over the baseline? One-sample tests of Δ > 0 (Wilcoxon and t)."""
    _, d = _deltas(delta)
    return _test("one_sample", d, lambda alt: stats.ttest_1samp(d, 0.0, alternative=alt),
                 lambda alt: stats.wilcoxon(d, alternative=alt), confidence)


# ---------------------------------------------------------------- multiplicity and ordering

@dataclass
class HolmResult:
    alpha: float
    adjusted: dict[str, float]
    reject: dict[str, bool]
    n_tests: int  # p-values the correction ran over
    excluded: list[str]  # keys with a NaN p-value: left out of the family, never rejected

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def holm(pvalues: Mapping[str, float], *, alpha: float = 0.05) -> HolmResult:
    """Holm–Bonferroni adjusted p-values (statsmodels ``multipletests``) and reject flags at ``alpha``."""
    keys = [k for k, p in pvalues.items() if np.isfinite(p)]
    excluded = [k for k, p in pvalues.items() if not np.isfinite(p)]
    adjusted = {k: float("nan") for k in pvalues}
    reject = {k: False for k in pvalues}
    if keys:
        rej, adj, _, _ = multipletests([float(pvalues[k]) for k in keys], alpha=alpha, method="holm")
        adjusted.update({k: float(a) for k, a in zip(keys, adj)})
        reject.update({k: bool(r) for k, r in zip(keys, rej)})
    return HolmResult(alpha, adjusted, reject, len(keys), excluded)


@dataclass
class HierarchyCheck:
    status: str  # pass | fail | inconclusive
    holds: bool
    failed: list[str]  # the inequalities that do not hold, e.g. "random > bottom"
    values: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hierarchy(deltas: Mapping[str, float], order: Sequence[str] = ("super", "random", "bottom")) -> HierarchyCheck:
    """Checks the strict chain order[0] > order[1] > … (default super > random > bottom)."""
    missing = [k for k in order if k not in deltas]
    if missing:
        raise KeyError(f"hierarchy needs {missing}")
    values = {k: float(deltas[k]) for k in order}
    if any(np.isnan(v) for v in values.values()):
        nan_keys = [k for k, v in values.items() if np.isnan(v)]
        return HierarchyCheck("inconclusive", False, [f"{k} is NaN" for k in nan_keys], values)
    failed = [f"{hi} > {lo}" for hi, lo in zip(order, order[1:]) if not values[hi] > values[lo]]
    return HierarchyCheck("fail" if failed else "pass", not failed, failed, values)


__all__ = ["delta_table", "ppl", "delta_ppl", "RatioCI", "ratio_ci", "PairedTest", "compare_paired",
           "compare_to_baseline", "HolmResult", "holm", "HierarchyCheck", "hierarchy"]
