"""Per-matrix statistics of a score tensor: centre, tail, concentration, and a log-spaced histogram.

Computed on the score's device in chunks (no full-size float64 copy of a huge matrix). Quantiles and the Gini
coefficient need sorted values: exact when a matrix has at most ``EXACT_LIMIT`` finite entries, otherwise
from a seeded uniform subsample of ``SUBSAMPLE`` positions (``quantile_method`` says which). Tail quantities
(max, top-1% mean, Hill) always use the exact top order statistics.

For metrics whose score is |w|^p · (data factor), ``null_tail_stats`` computes the same top-1%/median on a
no-structure null, |w|^p · (the data factor shuffled within the matrix): the tail criterion is graded against it,
because a product of unrelated factors is already heavy-tailed (|x·y| of two Gaussians gives ≈ 12).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from esa.analysis.score_tables import HIST_EDGES_LOG10
from esa.engine.scoring.metrics import weight_power
from esa.engine.models.targets import Target

CHUNK = 1 << 24
EXACT_LIMIT = 1 << 24
SUBSAMPLE = 1 << 22
HILL_MIN_M = 10
TOP_FRACTION = 0.01


def _quantile_sorted(x: torch.Tensor, q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of an ascending 1-D tensor."""
    pos = q * (x.numel() - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = float(x[lo]), float(x[hi])
    return a + (b - a) * (pos - lo)


def gini(sorted_values: torch.Tensor) -> float:
    """Gini coefficient of non-negative values given in ascending order.

    G = Σ_i (2i − n − 1)·x_(i) / (n·Σx), i = 1..n: 0 when all are equal, (n−1)/n when one of n is non-zero.
    NaN when empty, when the sum is zero, or when any value is negative (the coefficient is undefined there).
    """
    x = sorted_values.to(torch.float64)
    n = x.numel()
    if n == 0 or bool((x[:1] < 0).any()):
        return float("nan")
    total = float(x.sum())
    if total == 0.0:
        return float("nan")
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    return float(((2 * i - n - 1) * x).sum()) / (n * total)


def hill_alpha(top_desc: torch.Tensor, m: int) -> float:
    """Hill estimate of the tail index from the m+1 largest values (descending).

    α̂ = m / Σ_{i=1..m} ln(X_(i) / X_(m+1)). NaN when fewer than m+1 values, X_(m+1) ≤ 0, or the top m equal it.
    """
    if m < 1 or top_desc.numel() < m + 1:
        return float("nan")
    x = top_desc[: m + 1].to(torch.float64)
    if float(x[m]) <= 0.0:
        return float("nan")
    s = float(torch.log(x[:m] / x[m]).sum())
    return m / s if s > 0 else float("nan")


def tensor_score_stats(score: torch.Tensor, *, chunk: int = CHUNK, exact_limit: int = EXACT_LIMIT,
                       subsample: int = SUBSAMPLE, seed: int = 0) -> dict[str, Any]:
    """Statistics of one score tensor (any shape), as a flat dict row.

    - ``count`` entries, ``n_nonfinite`` (NaN or ±inf, excluded from everything else), ``n_zero``, ``n_negative``.
    - ``mean``, ``median``, ``p99``, ``max`` of the finite scores.
    - ``top1pct_mean``: mean of the ceil(1% · n_finite) largest finite scores;
      ``top1pct_over_median`` = top1pct_mean / median (NaN when the median is 0: the ratio is then undefined,
      and ``gini`` carries the concentration instead).
    - ``gini``: Gini coefficient of the finite scores (see ``gini``).
    - ``hill_alpha``: Hill tail index on the top m order statistics, m = max(10, ceil(1% · n_finite)), capped so
      that m + 1 positive values exist (``hill_m`` is the m used; smaller α = heavier tail).
    - ``hist_counts`` (64 bins over ``HIST_EDGES_LOG10``), ``hist_underflow``, ``hist_overflow``: |score| of the
      non-zero finite scores.
    """
    flat = score.detach().reshape(-1)
    n = flat.numel()
    dev = flat.device
    m_cap = max(HILL_MIN_M, math.ceil(TOP_FRACTION * n)) + 1
    edges = torch.tensor(10.0 ** HIST_EDGES_LOG10, dtype=torch.float64, device=dev)
    hist = torch.zeros(len(HIST_EDGES_LOG10) + 1, dtype=torch.int64, device=dev)
    n_finite = n_zero = n_negative = n_positive = 0
    total = 0.0
    tops = []
    for lo in range(0, n, chunk):
        s = flat[lo:lo + chunk]
        ok = torch.isfinite(s)
        n_finite += int(ok.sum())
        n_zero += int((s == 0).sum())
        n_negative += int((s < 0).sum())
        n_positive += int(((s > 0) & ok).sum())
        total += float(torch.where(ok, s, 0).sum(dtype=torch.float64))
        nz = s[ok & (s != 0)].to(torch.float64).abs()
        hist += torch.bincount(torch.bucketize(nz, edges, right=True), minlength=hist.numel())
        filled = torch.where(ok, s, torch.tensor(float("-inf"), dtype=s.dtype, device=dev))
        tops.append(torch.topk(filled, min(m_cap, s.numel()), sorted=False).values)
    row: dict[str, Any] = {"count": n, "n_nonfinite": n - n_finite, "n_zero": n_zero, "n_negative": n_negative}
    nan = float("nan")
    if n_finite == 0:
        row.update(mean=nan, median=nan, p99=nan, max=nan, top1pct_mean=nan, top1pct_over_median=nan, gini=nan,
                   hill_alpha=nan, hill_m=0, quantile_method="none")
    else:
        top = torch.sort(torch.cat(tops), descending=True).values[:min(m_cap, n_finite)]
        values, method = _sorted_sample(flat, n_finite, chunk, exact_limit, subsample, seed)
        median = _quantile_sorted(values, 0.5)
        m1 = max(1, math.ceil(TOP_FRACTION * n_finite))
        top1 = float(top[:m1].to(torch.float64).mean())
        m = min(max(HILL_MIN_M, math.ceil(TOP_FRACTION * n_finite)), n_positive - 1)
        row.update(mean=total / n_finite, median=median, p99=_quantile_sorted(values, 0.99), max=float(top[0]),
                   top1pct_mean=top1, top1pct_over_median=top1 / median if median != 0 else nan,
                   gini=gini(values), hill_alpha=hill_alpha(top, m) if m >= HILL_MIN_M else nan,
                   hill_m=max(m, 0) if m >= HILL_MIN_M else 0, quantile_method=method)
    h = hist.cpu().numpy()
    row.update(hist_counts=h[1:-1].tolist(), hist_underflow=int(h[0]), hist_overflow=int(h[-1]))
    return row


def _sorted_sample(flat: torch.Tensor, n_finite: int, chunk: int, exact_limit: int, subsample: int,
                   seed: int) -> tuple[torch.Tensor, str]:
    """Ascending finite values: all of them when few enough, else a seeded uniform subsample of positions."""
    if n_finite <= exact_limit:
        parts = [s[torch.isfinite(s)] for s in (flat[lo:lo + chunk] for lo in range(0, flat.numel(), chunk))]
        return torch.sort(torch.cat(parts).to(torch.float64)).values, "exact"
    gen = torch.Generator(device=flat.device).manual_seed(seed)
    pos = torch.randint(0, flat.numel(), (subsample,), generator=gen, device=flat.device)
    s = flat[pos]
    return torch.sort(s[torch.isfinite(s)].to(torch.float64)).values, f"subsample:{subsample}"


NULL_KEYS = ("null_top1pct_mean", "null_median", "null_top1pct_over_median")


def matrix_seed(seed: int, name: str) -> int:
    """A generator seed from the scoring seed and a matrix name: reproducible, and different for every matrix."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") >> 1


def null_tail_stats(score: torch.Tensor, weight: torch.Tensor, power: int, *, seed: int = 0,
                    exact_limit: int = EXACT_LIMIT, subsample: int = SUBSAMPLE) -> dict[str, Any]:
    """Top-1% mean, median and their ratio for the null score |w|^p · shuffle(score / |w|^p).

    The data factor score/|w|^p is permuted among the entries with w ≠ 0 and a finite score; other finite
    entries keep their score (0 for these metrics), so the null keeps the observed zeros and the observed |w|
    and only the pairing of weights with data is random. Same definitions as ``tensor_score_stats``. A matrix
    with more than ``exact_limit`` entries is nulled on a seeded uniform subsample of positions (the permutation
    restricted to them has the same distribution); ``null_method`` says which.
    """
    s, w = score.detach().reshape(-1), weight.detach().reshape(-1).to(score.device)
    if s.numel() != w.numel():
        raise ValueError(f"score has {s.numel()} entries, weight {w.numel()}")
    gen = torch.Generator(device=s.device).manual_seed(seed)
    method = "exact"
    if s.numel() > exact_limit:
        pos = torch.randint(0, s.numel(), (subsample,), generator=gen, device=s.device)
        s, w, method = s[pos], w[pos], f"subsample:{subsample}"
    s, w = s.to(torch.float64), w.to(torch.float64)
    finite = torch.isfinite(s)
    s, w = s[finite], w[finite]
    nan = float("nan")
    row: dict[str, Any] = dict(null_top1pct_mean=nan, null_median=nan, null_top1pct_over_median=nan,
                               null_method=method, weight_power=power)
    if s.numel() == 0:
        return row
    wp = w.abs().pow(power)
    movable = wp > 0
    factor = s[movable] / wp[movable]
    null = s.clone()
    null[movable] = wp[movable] * factor[torch.randperm(factor.numel(), generator=gen, device=s.device)]
    ordered = torch.sort(null).values
    median = _quantile_sorted(ordered, 0.5)
    top1 = float(ordered[-max(1, math.ceil(TOP_FRACTION * ordered.numel())):].mean())
    row.update(null_top1pct_mean=top1, null_median=median,
               null_top1pct_over_median=top1 / median if median != 0 else nan)
    return row


def target_score_stats(target: Target, score: torch.Tensor, *, metric: str | None = None,
                       hutchinson_mode: str = "abs", null_seed: int = 0, **kwargs) -> dict[str, Any]:
    """``tensor_score_stats`` of a target's 2-D score slice, with the target's identity columns first.

    With ``metric`` given and a weight factor in its score (``esa.engine.scoring.metrics.weight_power``), the row also
    holds ``null_tail_stats`` against the target's weight, seeded by ``null_seed`` (the scoring seed) and the
    target's name; otherwise those columns are NaN (no null is defined, or the metric was not said).
    """
    view = target.view(score)
    row = {"tensor": target.name, "layer": target.layer, "component": target.component, "expert": target.expert,
           **tensor_score_stats(view, **kwargs)}
    power = weight_power(metric, hutchinson_mode) if metric is not None else None
    if power is None:
        row.update({key: float("nan") for key in NULL_KEYS}, null_method="none", weight_power=float("nan"))
    else:
        row.update(null_tail_stats(view, target.weight(), power, seed=matrix_seed(null_seed, target.key),
                                   exact_limit=kwargs.get("exact_limit", EXACT_LIMIT),
                                   subsample=kwargs.get("subsample", SUBSAMPLE)))
    return row


__all__ = ["HIST_EDGES_LOG10", "NULL_KEYS", "tensor_score_stats", "null_tail_stats", "matrix_seed",
           "target_score_stats", "gini", "hill_alpha"]
