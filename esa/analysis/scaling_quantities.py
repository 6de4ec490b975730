"""The per-model quantities a scaling run fits against N, each read from one seed's Phase-2/3 results (never
recomputed): the shape of the score distribution, the tail index, the super-weight spike, the stability of the
top-k sets across seeds and the Phase-3 ΔPPL ratio.

Distribution quantities pool every scored weight of the model (the matrices a score run scores: no embeddings or
output head unless the run includes them), from the score tensors the run saved.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from esa.analysis.stability import jaccard_matrix
from esa.analysis.tails import pooled_hill

TOP_SHARES = {"top_mass_0.1pct": 0.001, "top_mass_1pct": 0.01}


def pooled_scores(path: Path) -> np.ndarray:
    """Every finite |score| in a saved score file (scores/<metric>.safetensors), as one float64 vector."""
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    flat = np.concatenate([np.abs(t.astype(np.float64).reshape(-1)) for _, t in sorted(tensors.items())])
    return flat[np.isfinite(flat)]


def distribution_quantities(scores: np.ndarray, critical_multiple: float) -> dict[str, float]:
    """critical_fraction: share of weights scoring above ``critical_multiple`` × the median score; top_mass_*: the
    share of the summed score held by the top 0.1% / 1% of weights (at least one weight). NaN when undefined (a zero
    median, no mass)."""
    n = len(scores)
    if n == 0:
        return {"critical_fraction": math.nan, **{name: math.nan for name in TOP_SHARES}}
    median = float(np.median(scores))
    total = float(scores.sum())
    ordered = np.sort(scores)[::-1]
    out = {"critical_fraction": float((scores > critical_multiple * median).mean()) if median > 0 else math.nan}
    for name, share in TOP_SHARES.items():
        top = max(1, math.ceil(share * n))
        out[name] = float(ordered[:top].sum() / total) if total > 0 else math.nan
    return out


def hill_alpha(tensor_stats: pd.DataFrame, metric: str) -> float:
    """The pooled Hill index over the metric's matrices (esa.analysis.tails.pooled_hill, as the Phase-2 page)."""
    rows = tensor_stats[tensor_stats["metric"] == metric]
    return pooled_hill(rows["hill_alpha"].to_numpy(dtype=float), rows["hill_m"].to_numpy(dtype=float))


def spike_ratio(superweight: dict) -> float:
    """The strongest super-weight candidate's spike: the largest min(input ratio, output ratio) over the MLP down
    projections (a super weight needs both spikes). NaN when the detector did not run or saw no projection."""
    layers = superweight.get("layers") or []
    ratios = [min(row["input_ratio"], row["output_ratio"]) for row in layers]
    finite = [r for r in ratios if math.isfinite(r)]
    return float(max(finite)) if finite else math.nan


def delta_ppl_ratio(conditions: pd.DataFrame, control: str, level: float | None = None) -> float:
    """ΔPPL(super) / ΔPPL(control) of one perturbation seed at ``level`` (default: its first), from the conditions of
    the seed's summary.json (target, level, delta_ppl, status). NaN when either
    condition is missing or diverged; the ratio is left signed (a negative control ΔPPL makes it negative)."""
    rows = conditions if level is None else conditions[np.isclose(conditions["level"], level)]
    if level is None and len(rows):
        rows = rows[rows["level"] == rows["level"].iloc[0]]
    by_target = {t: r for t, r in rows.groupby("target")}
    if "super" not in by_target or control not in by_target:
        return math.nan
    sup, ctl = by_target["super"].iloc[0], by_target[control].iloc[0]
    if sup.get("status", "ok") != "ok" or ctl.get("status", "ok") != "ok" or ctl["delta_ppl"] == 0:
        return math.nan
    return float(sup["delta_ppl"] / ctl["delta_ppl"])


def stability_matrix(topk_by_seed: dict[int, pd.DataFrame], metric: str, mode: str, k: int) -> np.ndarray:
    """Seeds × seeds Jaccard of the top-k sets (rank < k among the metric's rows in ``mode``)."""
    sets = {}
    for seed, frame in topk_by_seed.items():
        rows = frame[(frame["metric"] == metric) & (frame["mode"] == mode) & (frame["rank"] < k)]
        sets[seed] = rows
    return jaccard_matrix(sets)


def stability_chance(tensor_stats: pd.DataFrame, metric: str, k: int) -> float:
    """The Jaccard two seeds' per-matrix top-k sets would have if each were a uniform random k-subset of every
    matrix: per matrix of n scores the expected overlap is k²/n (hypergeometric mean), pooled as the observed
    Jaccard is, Σ E / Σ (2k − E). A fixed k is a larger share of a small matrix, so chance falls with N."""
    rows = tensor_stats[tensor_stats["metric"] == metric]
    n = (rows["count"] - rows["n_nonfinite"]).to_numpy(dtype=float)
    n = n[n > 0]
    size = np.minimum(float(k), n)
    expected = size * size / n
    return float(expected.sum() / (2 * size - expected).sum()) if len(n) else math.nan
