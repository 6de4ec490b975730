"""Paired statistics on per-window NLL tables (baseline vs perturbed conditions on the same windows).

Input tables are the evaluator's per-sequence output: one row per window with ``window_id``, ``n_tokens``,
``nll_sum`` and ``doc_id``. Windows of one document are not independent, so the document is the unit of analysis:
bootstraps resample documents (all their windows at once) and tests run on per-document ΔNLL. A table without
``doc_id`` falls back to one cluster per window, and every result says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

REQUIRED = ("window_id", "n_tokens", "nll_sum")
DELTA_COLUMNS = ["window_id", "doc_id", "n_tokens", "base_nll", "cond_nll", "delta_nll"]
NO_DOCS = "no doc_id column: each window is its own cluster (windows of one document treated as independent)"


def boot_method(clustered: bool) -> str:
    unit = "documents" if clustered else "windows (no doc_id column)"
    return (f"paired cluster percentile bootstrap over {unit}: each resample draws {unit.split(' ')[0]} with "
            "replacement (numpy default_rng(seed)) and takes all their windows, the same draw for every table on "
            "these windows; PPLs are token-weighted on the draw")


# ---------------------------------------------------------------- tables and token-weighted perplexity

def _check_table(df: pd.DataFrame, name: str) -> None:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{name} table lacks columns {missing}")
    dup = df["window_id"].duplicated()
    if dup.any():
        raise ValueError(f"{name} table repeats window ids, e.g. {df.loc[dup, 'window_id'].iloc[0]!r}")


@dataclass
class Aligned:
    """Every table's nll_sum in the baseline's window order, with each window's document (cluster) code."""

    ids: pd.Index
    tokens: np.ndarray
    nll: dict[str, np.ndarray]
    docs: np.ndarray  # cluster code per window, 0..n_docs-1
    doc_ids: np.ndarray  # the label of each code
    clustered: bool  # False: no doc_id column, one cluster per window

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    def doc_sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.docs, weights=values, minlength=self.n_docs)


def align(baseline: pd.DataFrame, others: Mapping[str, pd.DataFrame]) -> Aligned:
    """Pairing is only valid on identical windows, so a differing window set or token count is an error."""
    _check_table(baseline, "baseline")
    ids = pd.Index(baseline["window_id"])
    tokens = baseline["n_tokens"].to_numpy(dtype=np.int64)
    nll = {"baseline": baseline["nll_sum"].to_numpy(dtype=float)}
    for name, df in others.items():
        _check_table(df, name)
        other = pd.Index(df["window_id"])
        if len(other) != len(ids) or not ids.isin(other).all():
            only_base, only_other = ids.difference(other), other.difference(ids)
            raise ValueError(f"{name} and baseline are not on the same windows: {len(only_base)} only in baseline, "
                             f"{len(only_other)} only in {name} (e.g. {list(only_base[:2]) + list(only_other[:2])})")
        df = df.set_index("window_id").loc[ids]
        if not np.array_equal(df["n_tokens"].to_numpy(dtype=np.int64), tokens):
            raise ValueError(f"{name} and baseline disagree on n_tokens for some windows")
        nll[name] = df["nll_sum"].to_numpy(dtype=float)
    clustered = "doc_id" in baseline.columns
    labels = baseline["doc_id"] if clustered else baseline["window_id"]
    codes, doc_ids = pd.factorize(labels, sort=True, use_na_sentinel=False)  # a missing doc_id is one cluster
    return Aligned(ids, tokens, nll, codes.astype(np.int64), np.asarray(doc_ids), clustered)


def _ppl(nll_sum: np.ndarray, n_tokens: np.ndarray) -> float:
    total = float(n_tokens.sum())
    with np.errstate(over="ignore"):
        return float(np.exp(nll_sum.sum() / total)) if total > 0 and np.isfinite(nll_sum).all() else float("nan")


def ppl(df: pd.DataFrame) -> float:
    """exp(Σnll_sum / Σn_tokens): token-weighted, never a mean of per-window PPLs.

    NaN when any window diverged (non-finite nll_sum) or there are no tokens, as in the evaluator's summary.
    """
    return _ppl(df["nll_sum"].to_numpy(dtype=float), df["n_tokens"].to_numpy(dtype=np.int64))


def delta_table(baseline_df: pd.DataFrame, condition_df: pd.DataFrame) -> pd.DataFrame:
    """Per-window mean NLL under baseline and condition, joined on window_id, and their difference.

    ``doc_id`` is the baseline's (the window id itself when the table has none; ``attrs["clustered"]`` says so).
    """
    al = align(baseline_df, {"condition": condition_df})
    base, cond = al.nll["baseline"] / al.tokens, al.nll["condition"] / al.tokens
    out = pd.DataFrame({"window_id": al.ids.to_numpy(), "doc_id": al.doc_ids[al.docs], "n_tokens": al.tokens,
                        "base_nll": base, "cond_nll": cond, "delta_nll": cond - base}, columns=DELTA_COLUMNS)
    out.attrs["clustered"] = al.clustered
    return out


def delta_ppl(baseline_df: pd.DataFrame, condition_df: pd.DataFrame) -> float:
    """PPL(condition) − PPL(baseline) on the same windows."""
    al = align(baseline_df, {"condition": condition_df})
    return _ppl(al.nll["condition"], al.tokens) - _ppl(al.nll["baseline"], al.tokens)


# ---------------------------------------------------------------- the cluster bootstrap

@dataclass
class ClusterBoot:
    """One set of document resamples (multinomial counts per document), applied to any table on the windows."""

    counts: np.ndarray  # (n_boot, n_docs): how often each document is drawn
    docs: np.ndarray
    tokens: np.ndarray  # (n_boot,) tokens per resample

    def ppl(self, nll_sum: np.ndarray) -> np.ndarray:
        """Token-weighted PPL per resample; +inf throughout for a diverged table (it stays diverged)."""
        if not np.isfinite(nll_sum).all():
            return np.full(len(self.tokens), np.inf)
        sums = np.bincount(self.docs, weights=nll_sum, minlength=self.counts.shape[1])
        with np.errstate(over="ignore"):
            return np.exp(self.counts @ sums / self.tokens)


def cluster_boot(al: Aligned, n_boot: int, seed: int) -> ClusterBoot:
    # Drawing n documents with replacement = multinomial counts with equal probabilities.
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(al.n_docs, np.full(al.n_docs, 1 / al.n_docs), size=n_boot).astype(float)
    return ClusterBoot(counts, al.docs, counts @ al.doc_sum(al.tokens.astype(float)))


def percentile_ci(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval; ±inf samples count (a diverged resample); NaN ones are dropped."""
    x = np.asarray(samples, dtype=float)
    x, a = x[~np.isnan(x)], (1 - confidence) / 2
    if not len(x):
        return float("nan"), float("nan")
    if np.isinf(x).any():  # interpolating next to ±inf gives NaN: take the outer order statistics instead
        return float(np.quantile(x, a, method="lower")), float(np.quantile(x, 1 - a, method="higher"))
    return float(np.quantile(x, a)), float(np.quantile(x, 1 - a))


# ---------------------------------------------------------------- ΔPPL ratio and difference

@dataclass
class RatioCI:
    status: str  # ok | unstable | undefined | diverged
    reason: str
    ratio: float
    ci_low: float
    ci_high: float  # +inf when unstable: the denominator reaches 0 in too many resamples
    confidence: float
    ppl_baseline: float
    ppl_super: float
    ppl_control: float
    delta_super: float
    delta_control: float
    n_windows: int
    n_docs: int
    n_boot: int
    n_boot_defined: int  # resamples with ΔPPL(control) > 0, the ones the lower end uses
    frac_control_nonpositive: float
    n_nonfinite: dict[str, int] = field(default_factory=dict)
    ci_high_defined: float = float("nan")  # the upper quantile over the defined resamples only
    method: str = ""

    as_dict = asdict


def ratio_from(al: Aligned, boot: ClusterBoot, a: str, b: str, confidence: float = 0.95) -> RatioCI:
    """ΔPPL(a) / ΔPPL(b) of two tables of ``al`` with a CI from ``boot`` (see ``ratio_ci``)."""
    nan, n_boot = float("nan"), len(boot.tokens)
    nll = {"baseline": al.nll["baseline"], "super": al.nll[a], "control": al.nll[b]}
    nonfinite = {k: int((~np.isfinite(v)).sum()) for k, v in nll.items()}
    method = boot_method(al.clustered)
    empty = dict(ratio=nan, ci_low=nan, ci_high=nan, confidence=confidence, n_windows=len(al.tokens),
                 n_docs=al.n_docs, n_boot=0, n_boot_defined=0, frac_control_nonpositive=nan, n_nonfinite=nonfinite,
                 method=method)
    p = {k: _ppl(v, al.tokens) for k, v in nll.items()}
    if any(nonfinite.values()) or not all(np.isfinite(list(p.values()))):
        bad = ", ".join(f"{k}: {c}" for k, c in nonfinite.items() if c) or "PPL overflow"
        return RatioCI("diverged", f"non-finite NLL ({bad} windows)", ppl_baseline=nan, ppl_super=nan,
                       ppl_control=nan, delta_super=nan, delta_control=nan, **empty)
    d_super, d_control = p["super"] - p["baseline"], p["control"] - p["baseline"]
    point = dict(ppl_baseline=p["baseline"], ppl_super=p["super"], ppl_control=p["control"], delta_super=d_super,
                 delta_control=d_control)
    note = "" if al.clustered else NO_DOCS
    if al.n_docs < 2:
        return RatioCI("undefined", "fewer than 2 clusters: no bootstrap", **point, **empty)
    base = boot.ppl(nll["baseline"])
    num, den = boot.ppl(nll["super"]) - base, boot.ppl(nll["control"]) - base
    ok = den > 0
    frac = float(1 - ok.mean())
    empty.update(n_boot=n_boot, n_boot_defined=int(ok.sum()), frac_control_nonpositive=frac)
    if d_control <= 0:
        return RatioCI("undefined", f"ΔPPL(control) = {d_control:.4g} ≤ 0: the ratio has no meaning",
                       **point, **empty)
    alpha = (1 - confidence) / 2
    # Dropping resamples with ΔPPL(control) ≤ 0 (where the ratio is unbounded) keeps the lower end conservative.
    lo, hi = percentile_ci(num[ok] / den[ok], confidence) if ok.any() else (nan, nan)
    empty.update(ratio=d_super / d_control, ci_low=lo, ci_high=hi, ci_high_defined=hi)
    if frac > alpha:
        empty["ci_high"] = float("inf")
        why = (f"ΔPPL(control) ≤ 0 in {frac:.1%} of resamples (> {alpha:.1%}): the ratio's upper bound is "
               "unbounded")
        return RatioCI("unstable", "; ".join(filter(None, [why, note])), **point, **empty)
    why = f"ΔPPL(control) ≤ 0 in {frac:.1%} of resamples" if frac else ""
    return RatioCI("ok", "; ".join(filter(None, [why, note])), **point, **empty)


def ratio_ci(baseline: pd.DataFrame, super_df: pd.DataFrame, control_df: pd.DataFrame, *, n_boot: int = 2000,
             seed: int, confidence: float = 0.95) -> RatioCI:
    """ΔPPL(super) / ΔPPL(control) with a paired cluster-bootstrap CI (``boot_method``).

    A ratio with a denominator near zero is unstable: ``frac_control_nonpositive`` is the share of resamples where
    ΔPPL(control) ≤ 0. Above (1 − confidence)/2 the upper end is +inf and the status ``unstable``; a non-positive
    point denominator gives ``undefined``. Any non-finite NLL gives ``diverged``, with counts and no numbers.
    """
    al = align(baseline, {"super": super_df, "control": control_df})
    return ratio_from(al, cluster_boot(al, n_boot, seed), "super", "control", confidence)


@dataclass
class DiffCI:
    """ΔPPL(a) − ΔPPL(b) = PPL(a) − PPL(b) on the same windows, with a cluster-bootstrap CI.

    A diverged side is the largest possible effect: +inf when only a diverged, −inf when only b, NaN when both.
    """

    status: str  # ok | diverged
    diff: float
    ci_low: float
    ci_high: float
    delta_a: float
    delta_b: float
    confidence: float
    n_docs: int
    n_windows: int

    as_dict = asdict


def diff_from(al: Aligned, boot: ClusterBoot, a: str, b: str, confidence: float = 0.95) -> DiffCI:
    pa, pb, p0 = (_ppl(al.nll[k], al.tokens) for k in (a, b, "baseline"))
    da, db = (p - p0 if np.isfinite(p) else np.inf for p in (pa, pb))
    common = dict(delta_a=da, delta_b=db, confidence=confidence, n_docs=al.n_docs, n_windows=len(al.tokens))
    if not (np.isfinite(da) and np.isfinite(db)):
        d = np.inf if np.isfinite(db) else -np.inf if np.isfinite(da) else np.nan
        return DiffCI("diverged", d, d, d, **common)
    lo, hi = percentile_ci(boot.ppl(al.nll[a]) - boot.ppl(al.nll[b]), confidence)
    return DiffCI("ok", da - db, lo, hi, **common)


# ---------------------------------------------------------------- paired tests on per-document ΔNLL

@dataclass
class PairedTest:
    kind: str  # paired (a − b > 0) | one_sample (Δ > 0)
    status: str  # ok | inconclusive | diverged
    reason: str
    unit: str  # document | window (no doc_id) | value (arrays given)
    n: int  # units tested (documents)
    n_windows: int
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
    wilcoxon_p: float  # one-sided: a does more harm than b
    wilcoxon_p_less: float  # the opposite one-sided test: b does more harm than a
    alternative: str = "greater"

    as_dict = asdict


def doc_deltas(delta: pd.DataFrame) -> pd.Series:
    """Per document, the token-weighted mean ΔNLL of its windows (a ``delta_table``), indexed by doc_id."""
    doc = delta["doc_id"] if "doc_id" in delta else delta["window_id"]
    weighted = (delta["delta_nll"] * delta["n_tokens"]).groupby(doc.to_numpy(), sort=True).sum()
    return weighted / delta["n_tokens"].groupby(doc.to_numpy(), sort=True).sum()


def _units(x: pd.DataFrame | Sequence[float] | np.ndarray) -> tuple[pd.Series | None, str, int]:
    if isinstance(x, pd.DataFrame):
        clustered = "doc_id" in x and x.attrs.get("clustered", True)
        return doc_deltas(x), "document" if clustered else "window", len(x)
    values = np.asarray(x, dtype=float).ravel()
    return pd.Series(values), "value", len(values)


def _test(kind: str, a: np.ndarray, b: np.ndarray | None, unit: str, n_windows: int,
          confidence: float) -> PairedTest:
    with np.errstate(invalid="ignore"):  # inf − inf: both sides diverged, flagged below
        d, nan = (a - b if b is not None else a), float("nan")
    n = len(d)
    base = dict(kind=kind, unit=unit, n=n, n_windows=n_windows, confidence=confidence, ci_low=nan, ci_high=nan,
                cohen_dz=nan, t_stat=nan, t_p=nan, wilcoxon_stat=nan, wilcoxon_p=nan, wilcoxon_p_less=nan)
    note = NO_DOCS if unit == "window" else ""
    bad = int((~np.isfinite(d)).sum())
    if bad:
        return PairedTest(status="diverged", reason=f"{bad} of {n} {unit}s have non-finite ΔNLL", n_nonzero=0,
                          mean_diff=nan, sd_diff=nan, **base)
    nonzero, mean, sd = int((d != 0).sum()), float(d.mean()) if n else nan, float(d.std(ddof=1)) if n > 1 else nan
    if n < 2 or sd == 0:
        why = f"fewer than 2 {unit}s" if n < 2 else "the differences have zero variance"
        return PairedTest(status="inconclusive", reason="; ".join(filter(None, [why, note])), n_nonzero=nonzero,
                          mean_diff=mean, sd_diff=sd, **base)
    t = stats.ttest_1samp(d, 0.0, alternative="greater")
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence)
    w = stats.wilcoxon(d, alternative="greater")
    base.update(ci_low=float(ci.low), ci_high=float(ci.high), cohen_dz=mean / sd, t_stat=float(t.statistic),
                t_p=float(t.pvalue), wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue),
                wilcoxon_p_less=float(stats.wilcoxon(d, alternative="less").pvalue))
    return PairedTest(status="ok", reason=note, n_nonzero=nonzero, mean_diff=mean, sd_diff=sd, **base)


def compare_paired(delta_a: pd.DataFrame | Sequence[float] | np.ndarray,
                   delta_b: pd.DataFrame | Sequence[float] | np.ndarray, *, confidence: float = 0.95) -> PairedTest:
    """Is condition a worse than condition b on the same text? Tests d = Δa − Δb > 0 per document.

    ``delta_a``/``delta_b`` are ``delta_table`` outputs (aggregated per document with ``doc_deltas``, paired on
    doc_id; n = documents) or arrays of per-unit ΔNLL in the same order. Wilcoxon signed-rank and t-test (one-sided,
    both directions for the Wilcoxon), Cohen's d_z, and a two-sided t interval of mean(d).
    """
    (a, unit, n_windows), (b, _, _) = _units(delta_a), _units(delta_b)
    if isinstance(delta_a, pd.DataFrame) and isinstance(delta_b, pd.DataFrame):
        if len(delta_a) != len(delta_b) or not pd.Index(delta_a["window_id"]).isin(delta_b["window_id"]).all():
            raise ValueError("the two conditions are not on the same windows")
        b = b.loc[a.index]
    elif len(a) != len(b):
        raise ValueError(f"unequal lengths: {len(a)} vs {len(b)}")
    return _test("paired", a.to_numpy(), b.to_numpy(), unit, n_windows, confidence)


def compare_to_baseline(delta: pd.DataFrame | Sequence[float] | np.ndarray, *,
                        confidence: float = 0.95) -> PairedTest:
    """Does a condition raise NLL over the baseline? One-sample tests of per-document Δ > 0 (Wilcoxon and t)."""
    d, unit, n_windows = _units(delta)
    return _test("one_sample", d.to_numpy(), None, unit, n_windows, confidence)


def content_key(*arrays: np.ndarray) -> str:
    """Content hash of the per-window NLL vectors a test compares: identical tests share a key."""
    digest = hashlib.sha256()
    for x in arrays:
        digest.update(np.ascontiguousarray(np.asarray(x, dtype=np.float64)).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- multiplicity

@dataclass
class HolmResult:
    alpha: float
    adjusted: dict[str, float]
    reject: dict[str, bool]
    n_tests: int  # p-values the correction ran over
    excluded: list[str]  # keys with a NaN p-value: left out of the family, never rejected

    as_dict = asdict


def holm(pvalues: Mapping[str, float], *, alpha: float = 0.05) -> HolmResult:
    """Holm–Bonferroni adjusted p-values (statsmodels ``multipletests``) and reject flags at ``alpha``.

    Keys are distinct tests: callers map identical tests to one key so they enter the family once.
    """
    keys = [k for k, p in pvalues.items() if np.isfinite(p)]
    excluded = [k for k, p in pvalues.items() if not np.isfinite(p)]
    adjusted = {k: float("nan") for k in pvalues}
    reject = {k: False for k in pvalues}
    if keys:
        rej, adj, _, _ = multipletests([float(pvalues[k]) for k in keys], alpha=alpha, method="holm")
        adjusted.update({k: float(a) for k, a in zip(keys, adj)})
        reject.update({k: bool(r) for k, r in zip(keys, rej)})
    return HolmResult(alpha, adjusted, reject, len(keys), excluded)


__all__ = ["Aligned", "align", "delta_table", "ppl", "delta_ppl", "ClusterBoot", "cluster_boot", "percentile_ci",
           "RatioCI", "ratio_from", "ratio_ci", "DiffCI", "diff_from", "PairedTest", "doc_deltas", "compare_paired",
           "compare_to_baseline", "content_key", "HolmResult", "holm"]
