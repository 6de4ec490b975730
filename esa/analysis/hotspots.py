"""Where the selected weights sit: counts per layer or component against their parameter share.

Meaningful for global selections; a per_layer selection fixes the count per matrix by construction.
``hotspot_enrichment`` is the graded statistic (largest cell enrichment, CI over seeds, Monte-Carlo null);
the chi-square of ``hotspots`` is descriptive only: a deterministic top-k is no multinomial draw, so its p-value
(easily 1e-90) measures nothing about chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

MERGED = "(merged)"


@dataclass
class HotspotTest:
    by: list[str]
    table: pd.DataFrame  # per cell: by..., cell, n_params, share_params, observed, expected, residuals, test_cell
    statistic: float  # Pearson chi-square on the test cells (scipy.stats.chisquare)
    pvalue: float
    dof: int
    n_selected: int
    merged: list[str] = field(default_factory=list)  # cells pooled into MERGED for the test
    note: str = ""

    def as_dict(self) -> dict:
        return {"by": self.by, "statistic": self.statistic, "pvalue": self.pvalue, "dof": self.dof,
                "n_selected": self.n_selected, "merged": self.merged, "note": self.note}


def _param_counts(params: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Parameters per cell from per-cell or per-matrix rows (column n_params, count or numel)."""
    col = next((c for c in ("n_params", "count", "numel") if c in params), None)
    if col is None:
        raise ValueError("params needs a column n_params, count or numel")
    p = params.copy()
    if "layer" in by:
        p["layer"] = p["layer"].astype("Int64")
    return p.groupby(by, dropna=False)[col].sum().rename("n_params").reset_index()


def _label(values) -> str:
    return "/".join("none" if pd.isna(v) else str(v) for v in values)


def _pool_small(expected: pd.Series, min_expected: float) -> list[int]:
    """Positions to pool: the smallest cells, until every kept cell and the pool reach ``min_expected``."""
    order = list(expected.sort_values(kind="stable").index)
    pooled: list[int] = []
    pooled_e = 0.0
    while order and (expected[order[0]] < min_expected or (pooled and pooled_e < min_expected)):
        pooled_e += expected[order[0]]
        pooled.append(order.pop(0))
    return pooled


def hotspots(selected: pd.DataFrame, params: pd.DataFrame, by: str | list[str] = "layer", *,
             min_expected: float = 5.0) -> HotspotTest:
    """Observed selected counts per cell vs expected = N · (cell parameters / all parameters).

    Residuals per cell: Pearson (O−E)/√E and standardized (O−E)/√(E(1−p)), p the cell's share (approximately
    N(0,1) under the null). Cells with expected < ``min_expected`` are pooled (smallest first) into one cell
    for the chi-square test so its approximation holds; the table keeps every cell and names its test cell.
    Cells without parameters are dropped; a selected weight outside every cell is an error.
    """
    by = [by] if isinstance(by, str) else list(by)
    cells = _param_counts(params, by)
    cells = cells[cells["n_params"] > 0].reset_index(drop=True)
    sel = selected.copy()
    if "layer" in by:
        sel["layer"] = sel["layer"].astype("Int64")
    observed = sel.groupby(by, dropna=False).size().rename("observed").reset_index()
    table = cells.merge(observed, on=by, how="outer", indicator=True)
    stray = table[table["_merge"] == "right_only"]
    if len(stray):
        raise ValueError(f"selected weights in cells without parameters: {stray[by].to_dict('records')[:3]}")
    table = table.drop(columns="_merge")
    table["observed"] = table["observed"].fillna(0).astype(np.int64)
    n = int(table["observed"].sum())
    table["cell"] = [_label(v) for v in table[by].itertuples(index=False)]
    table["share_params"] = table["n_params"] / table["n_params"].sum()
    table["expected"] = n * table["share_params"]
    e, o, p = table["expected"], table["observed"], table["share_params"]
    table["pearson_residual"] = (o - e) / np.sqrt(e.where(e > 0))
    table["std_residual"] = (o - e) / np.sqrt((e * (1 - p)).where(e * (1 - p) > 0))

    pooled = _pool_small(e, min_expected) if n else []
    table["test_cell"] = table["cell"]
    table.loc[pooled, "test_cell"] = MERGED
    test = table.groupby("test_cell", sort=False)[["observed", "expected"]].sum()
    note = ""
    if n == 0:
        stat, pval, dof, note = float("nan"), float("nan"), 0, "no selected weights"
    elif len(test) < 2:
        stat, pval, dof, note = float("nan"), float("nan"), 0, "fewer than 2 cells after pooling small ones"
    else:
        res = stats.chisquare(test["observed"].to_numpy(float), test["expected"].to_numpy(float))
        stat, pval, dof = float(res.statistic), float(res.pvalue), len(test) - 1
    if pooled and not note:
        note = f"{len(pooled)} cells with expected < {min_expected:g} pooled for the test"
    cols = [*by, "cell", "n_params", "share_params", "observed", "expected", "pearson_residual", "std_residual",
            "test_cell"]
    table = table[cols].sort_values(by, na_position="last", kind="stable").reset_index(drop=True)
    merged = table.loc[table["test_cell"] == MERGED, "cell"].tolist()
    return HotspotTest(by, table, stat, pval, dof, n, merged, note)


ENRICH_METHOD = ("enrichment = cell share of the global top-k / cell share of the parameters, per seed; value = the "
                 "largest mean over seeds across cells; CI = percentile bootstrap over seeds of that largest mean; "
                 "null = the same statistic when each seed's k weights are drawn at random in proportion to "
                 "parameter counts (multinomial), its 95th percentile over the draws")


@dataclass
class HotspotEnrichment:
    by: list[str]
    table: pd.DataFrame  # per cell: by..., cell, n_params, share_params, seed columns (enrichment), mean
    seeds: list
    n_selected: list[int]  # per seed
    top_cell: str | None
    value: float  # the largest mean enrichment over cells
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int
    null_p95: float  # 95th percentile of the same statistic under random draws
    n_null: int
    note: str = ""
    method: str = ENRICH_METHOD

    def as_dict(self) -> dict:
        cells = [{"cell": row["cell"], "n_params": int(row["n_params"]), "share_params": float(row["share_params"]),
                  "per_seed": [float(row[f"seed_{s}"]) for s in self.seeds], "mean": float(row["mean"])}
                 for _, row in self.table.iterrows()]
        return {"by": self.by, "seeds": self.seeds, "n_selected": self.n_selected, "top_cell": self.top_cell,
                "value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "confidence": self.confidence,
                "n_boot": self.n_boot, "null_p95": self.null_p95, "n_null": self.n_null, "note": self.note,
                "method": self.method, "cells": cells}


def _cell_counts(selected: pd.DataFrame, cells: pd.DataFrame, by: list[str]) -> np.ndarray:
    """Selected weights per cell (in the order of ``cells``); a selected weight outside every cell is an error."""
    sel = selected.copy()
    if "layer" in by:
        sel["layer"] = sel["layer"].astype("Int64")
    observed = sel.groupby(by, dropna=False).size().rename("observed").reset_index()
    table = cells[by].merge(observed, on=by, how="outer", indicator=True)
    stray = table[table["_merge"] == "right_only"]
    if len(stray):
        raise ValueError(f"selected weights in cells without parameters: {stray[by].to_dict('records')[:3]}")
    return cells[by].merge(observed, on=by, how="left")["observed"].fillna(0).to_numpy(np.int64)


def _max_mean(enrichment: np.ndarray) -> np.ndarray:
    """Largest mean over seeds across cells, for arrays shaped (..., seeds, cells)."""
    return enrichment.mean(axis=-2).max(axis=-1)


def hotspot_enrichment(selected_by_seed: Mapping[Hashable, pd.DataFrame], params: pd.DataFrame,
                       by: str | list[str] = "component", *, n_null: int = 2000, n_boot: int = 2000,
                       confidence: float = 0.95, rng_seed: int = 0) -> HotspotEnrichment:
    """Enrichment of each cell in each seed's global top-k, the most enriched cell, its CI and its null.

    ``params`` are per-cell or per-matrix rows (n_params, count or numel) shared by the seeds. With one seed
    there is no CI (``note`` says so); a seed without selected weights leaves the value undefined.
    """
    by = [by] if isinstance(by, str) else list(by)
    cells = _param_counts(params, by)
    cells = cells[cells["n_params"] > 0].reset_index(drop=True)
    cells["cell"] = [_label(v) for v in cells[by].itertuples(index=False)]
    share = (cells["n_params"] / cells["n_params"].sum()).to_numpy(float)
    cells["share_params"] = share
    seeds = list(selected_by_seed)
    counts = np.array([_cell_counts(selected_by_seed[s], cells, by) for s in seeds]).reshape(len(seeds), len(cells))
    k = counts.sum(axis=1)
    nan = float("nan")
    result = dict(value=nan, ci_low=nan, ci_high=nan, n_boot=0, null_p95=nan, n_null=0, top_cell=None, note="")
    with np.errstate(invalid="ignore", divide="ignore"):
        enrichment = counts / k[:, None] / share[None, :]
    for i, s in enumerate(seeds):
        cells[f"seed_{s}"] = enrichment[i]
    cells["mean"] = enrichment.mean(axis=0) if len(seeds) else nan
    if not seeds or not len(cells) or (k == 0).any():
        result["note"] = "no selected weights" if len(cells) else "no cells with parameters"
    else:
        top = int(np.argmax(cells["mean"].to_numpy()))
        rng = np.random.default_rng(rng_seed)
        # Per seed, k draws in proportion to parameter counts: the selection blind to position.
        draws = np.stack([rng.multinomial(int(kk), share, size=n_null) / kk / share for kk in k], axis=1)
        null = _max_mean(draws)
        result.update(value=float(cells["mean"].iloc[top]), top_cell=cells["cell"].iloc[top],
                      null_p95=float(np.quantile(null, 0.95)), n_null=n_null)
        if len(seeds) < 2:
            result["note"] = "needs ≥ 2 seeds for a CI over seeds"
        else:
            boot = _max_mean(enrichment[rng.integers(0, len(seeds), size=(n_boot, len(seeds)))])
            lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
            result.update(ci_low=float(lo), ci_high=float(hi), n_boot=n_boot)
    cols = [*by, "cell", "n_params", "share_params", *(f"seed_{s}" for s in seeds), "mean"]
    table = cells[cols].sort_values(by, na_position="last", kind="stable").reset_index(drop=True)
    return HotspotEnrichment(by, table, seeds, [int(x) for x in k], confidence=confidence, **result)


__all__ = ["HotspotTest", "hotspots", "MERGED", "HotspotEnrichment", "hotspot_enrichment"]
