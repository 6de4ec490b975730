"""Where the selected weights sit: counts per layer or component against their parameter share.

Meaningful for global selections; a per_layer selection fixes the count per matrix by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


__all__ = ["HotspotTest", "hotspots", "MERGED"]
