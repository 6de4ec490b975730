"""Phase-5 tables: pruning (held-out PPL per arm, group and sparsity, the ratio to magnitude, the sparsity each
condition reached, what keeping the critical set changed) and adaptation (gain on the new domain against
forgetting of the original one, per arm), read from the grade stage's pruning.parquet and adaptation.parquet.

``prune_summary`` and ``adapt_summary`` reduce the per-seed rows to one numeric row per condition; the charts
(esa.report.charts_phase5) and the display tables below share them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from esa.report.tables import DASH, fmt, fmt_ci

PRUNE_METHODS = ("magnitude", "wanda", "grad_x_weight", "grad_squared", "obd", "random")
PROTECTED = "+protected"
REFERENCE = "magnitude"
DEFAULT_SPARSITY = 0.5
ADAPT_ARMS = {"full": "all weights (full fine-tuning)", "frozen": "all but the critical set (frozen)",
              "fisher": "all, Fisher-weighted penalty on the critical set", "top": "only the top-k by score",
              "random": "only a random k", "bottom": "only the bottom-k by score", "lora": "LoRA adapters"}
PRUNE_SUMMARY_COLUMNS = ["run", "group", "sparsity", "arm", "method", "protected", "seeds", "diverged", "ppl",
                         "ci_low", "ci_high", "dense_ppl", "vs_magnitude", "achieved", "min_matrix", "max_matrix"]


def prune_runs(spec) -> list:
    return [run for run in getattr(spec, "runs", []) if run.kind == "prune"]


def adapt_runs(spec) -> list:
    return [run for run in getattr(spec, "runs", []) if run.kind == "adapt"]


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def named_sparsities(criteria: Iterable[Any], run_id: str) -> list[float]:
    """The sparsities the run's prune_advantage criteria name (spec criteria or dicts), else [0.5]."""
    found = {float(_field(c, "sparsity")) for c in criteria or []
             if _field(c, "kind") == "prune_advantage" and _field(c, "run") == run_id and _field(c, "sparsity")}
    return sorted(found) or [DEFAULT_SPARSITY]


def arm_order(arms: Iterable[str]) -> list[str]:
    """Methods in a fixed order, each followed by its protected arm; arms of unknown methods last, by name."""
    arms = list(dict.fromkeys(arms))

    def key(arm: str) -> tuple:
        method = arm.removesuffix(PROTECTED)
        rank = PRUNE_METHODS.index(method) if method in PRUNE_METHODS else len(PRUNE_METHODS)
        return rank, method, arm.endswith(PROTECTED)

    return sorted(arms, key=key)


def seed_ratio(rows: pd.DataFrame, a: str, b: str) -> float:
    """Median over seeds of PPL(a) / PPL(b), each seed's two PPLs on its own (shared) windows; seeds where
    either side diverged are left out (NaN when none is left)."""
    ppl = rows.pivot_table(index="seed", columns="arm", values="ppl", aggfunc="first")
    if a not in ppl or b not in ppl:
        return math.nan
    ratios = (ppl[a] / ppl[b]).to_numpy(dtype=float)
    ratios = ratios[np.isfinite(ratios)]
    return float(np.median(ratios)) if len(ratios) else math.nan


def prune_summary(pruning: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """One row per group, sparsity and arm of a prune run: seeds, how many diverged, the mean PPL over the seeds
    that did not (inf when all did), the envelope of their 95% cluster-bootstrap CIs, the dense PPL, the median
    per-seed ratio to magnitude, and the sparsity reached (mean share of scored weights that are zero; the least
    and most sparse matrix over seeds)."""
    if pruning is None or pruning.empty:
        return pd.DataFrame(columns=PRUNE_SUMMARY_COLUMNS)
    rows = pruning[pruning["run"] == run_id]
    out = []
    for (group, sparsity), cell in rows.groupby(["group", "sparsity"], sort=True):
        for arm in arm_order(cell["arm"]):
            seeds = cell[cell["arm"] == arm]
            ok = seeds[np.isfinite(seeds["ppl"].to_numpy(dtype=float))]
            out.append({
                "run": run_id, "group": group, "sparsity": float(sparsity), "arm": arm,
                "method": seeds["method"].iloc[0], "protected": bool(seeds["protected"].iloc[0]),
                "seeds": len(seeds), "diverged": len(seeds) - len(ok),
                "ppl": float(ok["ppl"].mean()) if len(ok) else math.inf,
                "ci_low": float(ok["ci_low"].min()) if len(ok) else math.nan,
                "ci_high": float(ok["ci_high"].max()) if len(ok) else math.nan,
                "dense_ppl": float(seeds["dense_ppl"].mean()),
                "vs_magnitude": seed_ratio(cell, arm, REFERENCE),
                **{name: float(seeds[col].agg(how)) if col in seeds else math.nan
                   for name, col, how in (("achieved", "achieved", "mean"), ("min_matrix", "min_matrix", "min"),
                                          ("max_matrix", "max_matrix", "max"))},
            })
    frame = pd.DataFrame(out, columns=PRUNE_SUMMARY_COLUMNS)
    rank = frame["group"].map({"row": 0, "matrix": 1}).fillna(2)
    return frame.assign(_rank=rank).sort_values(["_rank", "sparsity"], kind="stable").drop(columns="_rank") \
        .reset_index(drop=True)


def _pct(x: float) -> str:
    """A share as a percentage, three significant digits: 0.5 → 50%, 0.1137 → 11.4%."""
    return DASH if x is None or not math.isfinite(x) else f"{100 * x:.3g}%"


def _share(x: float) -> str:
    """A sparsity reached, to a hundredth of a percent (one weight of a 64 × 64 matrix is 0.024%)."""
    return DASH if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"


def _diverged(row: pd.Series) -> str:
    return f"{row['diverged']} of {row['seeds']}" if row["diverged"] else DASH


def prune_table(summary: pd.DataFrame, sparsities: Iterable[float]) -> pd.DataFrame:
    """The named sparsities: PPL [CI] per arm, its ratio to magnitude and to the dense model, and the target
    sparsity next to the one reached (overall, least and most sparse matrix)."""
    keep = summary[summary["sparsity"].isin([float(s) for s in sparsities])]
    rows = []
    for _, r in keep.iterrows():
        ppl = f"{fmt(r['ppl'])} {fmt_ci([r['ci_low'], r['ci_high']])}" if math.isfinite(r["ppl"]) else fmt(r["ppl"])
        rows.append({"group": r["group"], "target": _pct(r["sparsity"]), "arm": r["arm"], "PPL [95% CI]": ppl,
                     "× magnitude": fmt(r["vs_magnitude"]), "× dense": fmt(r["ppl"] / r["dense_ppl"]),
                     "achieved": _share(r["achieved"]),
                     "matrices (least – most)": f"{_share(r['min_matrix'])} – {_share(r['max_matrix'])}",
                     "diverged seeds": _diverged(r)})
    return pd.DataFrame(rows)


def sparsity_record(summary: pd.DataFrame) -> pd.DataFrame:
    """Every condition's target and reached sparsity (the record a pruning claim rests on): the share of scored
    weights that are zero, its distance from the target in percentage points, the least and most sparse matrix."""
    rows = []
    for _, r in summary.iterrows():
        gap = round(100 * (r["achieved"] - r["sparsity"]), 2) + 0.0  # + 0.0: no "−0.00"
        rows.append({"group": r["group"], "arm": r["arm"], "target": _pct(r["sparsity"]),
                     "achieved": _share(r["achieved"]),
                     "achieved − target": DASH if not math.isfinite(gap) else
                     f"{gap:+.2f} pp".replace("-", "−").replace("+0.00", "0.00"),
                     "least sparse matrix": _share(r["min_matrix"]), "most sparse matrix": _share(r["max_matrix"])})
    return pd.DataFrame(rows)


def sparsity_gap_text(summary: pd.DataFrame) -> str:
    """One sentence: how far the sparsity reached strayed from the target (overall and per matrix)."""
    if summary.empty or not np.isfinite(summary["achieved"].to_numpy(dtype=float)).any():
        return "No condition recorded the sparsity it reached."
    gap = (summary["achieved"] - summary["sparsity"]).abs()
    worst = summary.loc[gap.idxmax()]
    spread = pd.concat([(summary[c] - summary["sparsity"]).abs() for c in ("min_matrix", "max_matrix")],
                       axis=1).max(axis=1)
    widest = summary.loc[spread.idxmax()]
    return (f"Every condition reached its target sparsity within {100 * gap.max():.2f} percentage points of the "
            f"scored weights (largest gap: {worst['arm']}, {worst['group']} groups, target {_pct(worst['sparsity'])}"
            f" → {_share(worst['achieved'])}); single matrices within {100 * spread.max():.2f} points (widest: "
            f"{widest['arm']}, {widest['group']} groups, target {_pct(widest['sparsity'])}: "
            f"{_share(widest['min_matrix'])} – {_share(widest['max_matrix'])}).")


def protection_frame(pruning: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """Per protected arm, group and sparsity: mean PPL of the method alone and with the critical set kept, and
    the median per-seed change (PPL(kept) / PPL(method) − 1)."""
    columns = ["arm", "group", "sparsity", "ppl_method", "ppl_kept", "change"]
    if pruning is None or pruning.empty:
        return pd.DataFrame(columns=columns)
    summary = prune_summary(pruning, run_id)
    rows = pruning[pruning["run"] == run_id]
    out = []
    for arm in arm_order(a for a in summary["arm"].unique() if a.endswith(PROTECTED)):
        method = arm.removesuffix(PROTECTED)
        for (group, sparsity), cell in summary.groupby(["group", "sparsity"], sort=False):
            ppl = cell.set_index("arm")["ppl"]
            if method not in ppl or arm not in ppl:
                continue
            seeds = rows[(rows["group"] == group) & (rows["sparsity"] == sparsity)]
            out.append({"arm": arm, "group": group, "sparsity": float(sparsity), "ppl_method": ppl[method],
                        "ppl_kept": ppl[arm], "change": seed_ratio(seeds, arm, method) - 1})
    return pd.DataFrame(out, columns=columns)


def protection_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``protection_frame`` for display: target sparsity and the change as percentages."""
    return pd.DataFrame([{"arm": r.arm, "group": r.group, "target": _pct(r.sparsity),
                          "PPL (method alone)": fmt(r.ppl_method), "PPL (critical set kept)": fmt(r.ppl_kept),
                          "change": DASH if not math.isfinite(r.change) else
                          f"{'+' if r.change > 0 else '−' if r.change < 0 else ''}{_pct(abs(r.change))}"}
                         for r in frame.itertuples()])


def protection_text(frame: pd.DataFrame, sparsities: Iterable[float]) -> str:
    """One Markdown sentence per protected arm at the named sparsities; empty when the run has none."""
    lines = []
    wanted = [float(s) for s in sparsities]
    for arm, rows in frame[frame["sparsity"].isin(wanted)].groupby("arm", sort=False):
        groups = []
        for group, cells in rows.groupby("group", sort=False):
            parts = [f"{'+' if r.change > 0 else '−' if r.change < 0 else '±'}{_pct(abs(r.change))} at "
                     f"{_pct(r.sparsity)} (PPL {fmt(r.ppl_method)} → {fmt(r.ppl_kept)})"
                     for r in cells.itertuples() if math.isfinite(r.change)]
            if parts:
                groups.append(f"in {group} groups {', '.join(parts)}")
        if groups:
            lines.append(f"Keeping the critical set while pruning by **{arm.removesuffix(PROTECTED)}** changed "
                         f"held-out PPL {'; '.join(groups)}.")
    return "\n\n".join(lines)


# --- Adaptation --------------------------------------------------------------------------------------------

ADAPT_SUMMARY_COLUMNS = ["run", "arm", "seeds", "n_trainable", "steps", "gain", "gain_ci_low", "gain_ci_high",
                         "forgetting", "forgetting_ci_low", "forgetting_ci_high", "gain_per_mparam", "ppl_before",
                         "ppl_after", "new_ppl_before", "new_ppl_after", "wall_time_s"]


def _adapt_key(arm: str) -> tuple:
    order = list(ADAPT_ARMS)
    return (order.index(arm) if arm in order else len(order), arm)


def adapt_summary(adaptation: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """One row per arm of an adapt run: means over seeds; each measure's CI is the envelope of the seeds' 95%
    CIs (lowest low, highest high); the gain per million updated parameters."""
    if adaptation is None or adaptation.empty:
        return pd.DataFrame(columns=ADAPT_SUMMARY_COLUMNS)
    rows = adaptation[adaptation["run"] == run_id]
    out = []
    for arm in sorted(rows["arm"].unique(), key=_adapt_key):
        seeds = rows[rows["arm"] == arm]
        mean = {c: float(seeds[c].mean()) for c in ("n_trainable", "steps", "gain", "forgetting", "ppl_before",
                                                     "ppl_after", "new_ppl_before", "new_ppl_after", "wall_time_s")}
        out.append({"run": run_id, "arm": arm, "seeds": len(seeds), **mean,
                    "gain_ci_low": float(seeds["gain_ci_low"].min()),
                    "gain_ci_high": float(seeds["gain_ci_high"].max()),
                    "forgetting_ci_low": float(seeds["forgetting_ci_low"].min()),
                    "forgetting_ci_high": float(seeds["forgetting_ci_high"].max()),
                    "gain_per_mparam": float(seeds["gain_per_param"].mean() * 1e6)})
    return pd.DataFrame(out, columns=ADAPT_SUMMARY_COLUMNS)


def adapt_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The display table of one run: what each arm trains, how many weights, gain and forgetting [CI], gain per
    million updated parameters, PPL before → after on both splits, wall time."""
    rows = []
    for _, r in summary.iterrows():
        rows.append({"arm": r["arm"], "trains": ADAPT_ARMS.get(r["arm"], DASH), "seeds": int(r["seeds"]),
                     "trainable": int(round(r["n_trainable"])), "steps": int(round(r["steps"])),
                     "gain [95% CI]": f"{fmt(r['gain'])} {fmt_ci([r['gain_ci_low'], r['gain_ci_high']])}",
                     "forgetting [95% CI]": f"{fmt(r['forgetting'])} "
                                            f"{fmt_ci([r['forgetting_ci_low'], r['forgetting_ci_high']])}",
                     "gain / M params": fmt(r["gain_per_mparam"]),
                     "PPL original": f"{fmt(r['ppl_before'])} → {fmt(r['ppl_after'])}",
                     "PPL new domain": f"{fmt(r['new_ppl_before'])} → {fmt(r['new_ppl_after'])}",
                     "wall time (s)": fmt(r["wall_time_s"])})
    return pd.DataFrame(rows)


def loss_frame(curves: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """Training loss per arm and step of one run, the mean over seeds."""
    if curves is None or curves.empty:
        return pd.DataFrame(columns=["arm", "step", "loss", "seeds"])
    rows = curves[curves["run"] == run_id]
    frame = rows.groupby(["arm", "step"], as_index=False).agg(loss=("loss", "mean"), seeds=("seed", "nunique"))
    return frame.sort_values(["arm", "step"], key=lambda s: s.map(lambda a: _adapt_key(a)[0]) if s.name == "arm"
                             else s, kind="stable").reset_index(drop=True)
