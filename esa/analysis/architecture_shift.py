"""Base → instruct shift of the per-matrix top-k: which critical weights survive fine-tuning, against chance.

Both models have the same matrices name for name. Per shared seed (same calibration documents for both), the
per-matrix top-k sets (mode per_layer, rank < k, keys (tensor, flat_index)) give a pooled Jaccard
Σ|A∩B| / Σ|A∪B| over matrices, and per component the share of the base top-k kept by the instruct model.

Chance: two independent uniform draws of a and b entries from a matrix of N finite scores share a·b/N entries on
average (the hypergeometric mean); the chance Jaccard pools these expectations over matrices the same way,
Σ E|A∩B| / Σ (a + b − E|A∩B|) — a ratio of expectations, close to the expected ratio when many matrices are pooled.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
import pandas as pd

from esa.analysis import seed_resampling as rs

SeedFrames = Mapping[Hashable, tuple[pd.DataFrame, pd.DataFrame]]


def _matrix_key(frame: pd.DataFrame) -> pd.Series:
    expert = frame["expert"] if "expert" in frame else pd.Series(np.nan, index=frame.index)
    return frame["tensor"].astype(str) + expert.map(lambda e: "" if pd.isna(e) else f"[{int(e)}]")


def per_layer_topk(topk: pd.DataFrame, k: int | None, metric: str | None) -> pd.DataFrame:
    """The per-matrix top-k rows (rank < k; all stored ranks when k is None) with a matrix key column."""
    rows = topk[topk["mode"] == "per_layer"]
    if metric is not None and "metric" in rows:
        rows = rows[rows["metric"] == metric]
    if k is not None:
        rows = rows[rows["rank"] < k]
    return rows.assign(matrix=_matrix_key(rows), flat_index=rows["flat_index"].astype(np.int64))


def matrix_overlap(base: pd.DataFrame, instruct: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """Per matrix: component, eligible size n (finite scores), a = |A|, b = |B|, x = |A∩B|, expected = a·b/n."""
    keys = ["matrix", "flat_index"]
    a = base.groupby("matrix").size().rename("a")
    b = instruct.groupby("matrix").size().rename("b")
    x = base[keys].merge(instruct[keys], on=keys).groupby("matrix").size().rename("x")
    sizes = stats.assign(matrix=_matrix_key(stats), n=stats["count"] - stats["n_nonfinite"])
    sizes = sizes.drop_duplicates("matrix").set_index("matrix")[["component", "n"]]
    table = sizes.join([a, b, x], how="left").fillna({"a": 0, "b": 0, "x": 0})
    table = table[(table["a"] > 0) | (table["b"] > 0)]
    table["expected"] = table["a"] * table["b"] / table["n"].where(table["n"] > 0)
    return table


def _pooled_jaccard(x: pd.Series, a: pd.Series, b: pd.Series) -> float:
    union = (a + b - x).sum()
    return float(x.sum() / union) if union else float("nan")


def seed_shift(table: pd.DataFrame) -> dict:
    """One seed's pooled Jaccard, its chance value, and per component the kept share of the base top-k."""
    kept = table.groupby("component")[["x", "expected", "a"]].sum()
    return {"jaccard": _pooled_jaccard(table["x"], table["a"], table["b"]),
            "chance_jaccard": _pooled_jaccard(table["expected"], table["a"], table["b"]),
            "kept": (kept["x"] / kept["a"].where(kept["a"] > 0)).to_dict(),
            "chance_kept": (kept["expected"] / kept["a"].where(kept["a"] > 0)).to_dict()}


def topk_shift(base: SeedFrames, instruct: SeedFrames, k: int | None = None, metric: str | None = None,
               draws: int = rs.DRAWS, rng_seed: int = rs.RNG_SEED, confidence: float = rs.CONFIDENCE) -> dict:
    """Base → instruct shift over the seeds both models share (paired: one draw of seed indices for every
    statistic). Returns {k, seeds, n_seeds, jaccard, chance_jaccard, jaccard_over_chance, components}, each
    statistic {mean, ci, per_seed}; components: {component: {kept, chance_kept}}."""
    seeds = sorted(set(base) & set(instruct), key=str)
    per_seed = []
    for s in seeds:
        stats = base[s][0]
        if metric is not None and "metric" in stats:
            stats = stats[stats["metric"] == metric]
        table = matrix_overlap(per_layer_topk(base[s][1], k, metric), per_layer_topk(instruct[s][1], k, metric),
                               stats)
        per_seed.append(seed_shift(table))
    seed_idx = rs.model_draws(len(seeds), draws, rng_seed)

    def stat(values):
        return rs.mean_stat(values, seed_idx, confidence)

    components = sorted(set().union(*(p["kept"] for p in per_seed)), key=str) if per_seed else []
    ratio = [p["jaccard"] / p["chance_jaccard"] if p["chance_jaccard"] else float("nan") for p in per_seed]
    return {"k": k, "seeds": [str(s) for s in seeds], "n_seeds": len(seeds),
            "jaccard": stat([p["jaccard"] for p in per_seed]),
            "chance_jaccard": stat([p["chance_jaccard"] for p in per_seed]),
            "jaccard_over_chance": stat(ratio),
            "components": {c: {"kept": stat([p["kept"].get(c, np.nan) for p in per_seed]),
                               "chance_kept": stat([p["chance_kept"].get(c, np.nan) for p in per_seed])}
                           for c in components}}
