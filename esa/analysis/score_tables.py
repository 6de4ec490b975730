"""Torch-free tables over per-matrix score statistics, shared by the scoring stage and the report pages.

The scoring stage (esa.engine.scoring.score_stats) fills histograms on these edges and writes per-matrix rows;
pages read the same edges and summarise the rows without importing the engine.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

# Histogram of |score| for non-zero finite scores: fixed edges shared by every matrix and run, so histograms
# add up across matrices. Bin i covers [10^e_i, 10^e_{i+1}); below the first edge is underflow, at or above
# the last edge is overflow; exact zeros are counted apart.
HIST_EDGES_LOG10 = np.linspace(-12.0, 4.0, 65)


def layer_component_summary(rows: Iterable[dict] | pd.DataFrame, selected_df: pd.DataFrame) -> pd.DataFrame:
    """Layer × component table: parameters, selected weights, shares, enrichment and mean score.

    ``rows`` are per-matrix stats (``target_score_stats``); ``selected_df`` is a top-k artifact. Columns:
    layer, component, n_matrices, n_params, n_selected, share_params, share_selected, enrichment
    (share_selected / share_params) and mean_score (the mean over all finite scores of the cell).
    """
    stats = pd.DataFrame(list(rows)) if not isinstance(rows, pd.DataFrame) else rows.copy()
    stats["layer"] = stats["layer"].astype("Int64")
    stats["_finite"] = stats["count"] - stats["n_nonfinite"]
    stats["_sum"] = stats["mean"].fillna(0.0) * stats["_finite"]
    cell = stats.groupby(["layer", "component"], dropna=False).agg(
        n_matrices=("count", "size"), n_params=("count", "sum"), _finite=("_finite", "sum"), _sum=("_sum", "sum"))
    cell = cell.reset_index()
    cell["mean_score"] = np.where(cell["_finite"] > 0, cell["_sum"] / cell["_finite"].where(cell["_finite"] > 0),
                                  np.nan)
    sel = selected_df.assign(layer=selected_df["layer"].astype("Int64"))
    counts = sel.groupby(["layer", "component"], dropna=False).size().rename("n_selected").reset_index()
    out = cell.merge(counts, on=["layer", "component"], how="left")
    out["n_selected"] = out["n_selected"].fillna(0).astype(np.int64)
    out["share_params"] = out["n_params"] / out["n_params"].sum()
    total_sel = out["n_selected"].sum()
    out["share_selected"] = out["n_selected"] / total_sel if total_sel else np.nan
    out["enrichment"] = out["share_selected"] / out["share_params"]
    cols = ["layer", "component", "n_matrices", "n_params", "n_selected", "share_params", "share_selected",
            "enrichment", "mean_score"]
    return out[cols].sort_values(["layer", "component"], na_position="last", kind="stable").reset_index(drop=True)
