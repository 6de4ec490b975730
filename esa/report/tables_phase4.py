"""Phase-4 tables: the ladder (one row per model), the fits (one row per quantity), the model choice of one
quantity, and the architecture comparison's group shares and shifts, all read from the grade stage's analysis.json
and scaling.parquet."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from esa.analysis.scaling_data import seed_interval
from esa.report.tables import DASH, fmt, fmt_ci
from esa.spec.scaling_runs import SCALING_QUANTITIES

LAW_NAMES = {"power_law": "power law", "log_linear": "log-linear", "exponential": "exponential",
             "broken_power_law": "broken power law"}


def scaling_runs(spec) -> list:
    return [run for run in getattr(spec, "runs", []) if run.kind == "scaling"]


def architecture_runs(spec) -> list:
    return [run for run in getattr(spec, "runs", []) if run.kind == "architecture"]


def short(model: str) -> str:
    """A model's name as the charts label it (a local path's last part)."""
    return str(model).rstrip("/").rsplit("/", 1)[-1]


def ladder_frame(table: pd.DataFrame, run_id: str, chance: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per model of a scaling run: N, and each quantity's mean over seeds with its 95% t-interval (the Jaccard:
    mean over pairs of seeds, whose pairs share seeds, so no interval is given; next to it the Jaccard of random
    per-matrix k-subsets, ``chance``: the run's stability_chance per model)."""
    rows = table[table["run"] == run_id]
    if rows.empty:
        return pd.DataFrame()
    out = []
    for model, group in rows.groupby("model", sort=False):
        row: dict[str, Any] = {"model": short(model), "N": int(group["n_params"].iloc[0])
                               if pd.notna(group["n_params"].iloc[0]) else DASH}
        for quantity in SCALING_QUANTITIES:
            values = group.loc[group["quantity"] == quantity, "value"].to_numpy(dtype=float)
            interval = seed_interval(values) if quantity != "stability_jaccard" else None
            row[quantity] = (DASH if not len(values) else
                             f"{fmt(np.mean(values))} {fmt_ci(interval)}" if interval else fmt(np.mean(values)))
            if quantity == "stability_jaccard" and chance:
                row["stability chance"] = fmt(chance.get(model))
        out.append(row)
    return pd.DataFrame(out).sort_values("N", key=lambda s: pd.to_numeric(s, errors="coerce"), kind="stable")


def fits_frame(summary: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per quantity: α [CI], R² [CI], the law AICc and BIC choose, the leave-one-out error and the extrapolation."""
    rows = []
    for quantity, fit in ((summary or {}).get("quantities") or {}).items():
        if fit.get("error"):
            rows.append({"quantity": quantity, "α [95% CI]": DASH, "R² [95% CI]": DASH, "best (AICc / BIC)": DASH,
                         "LOO max error [CI]": DASH, "largest from the others": DASH, "note": fit["error"]})
            continue
        power, laws, extra = fit["power_law"], fit["laws"], fit["extrapolation"]
        loo = fit["prediction_error"]["max"]
        rows.append({
            "quantity": quantity,
            "α [95% CI]": f"{fmt(power['alpha'])} {fmt_ci(power['alpha_ci'])} ({power['alpha_ci_method']})",
            "R² [95% CI]": f"{fmt(power['r2'])} {fmt_ci(power['r2_ci'])}",
            "best (AICc / BIC)": f"{LAW_NAMES.get(laws['best_by_aicc'], DASH)} / {LAW_NAMES[laws['best_by_bic']]}",
            "LOO max error [CI]": f"{fmt(loo['value'])} {fmt_ci(loo['ci'])} ({short(loo['model'])})",
            "largest from the others": f"{fmt(extra['relative_error'])} {fmt_ci(extra['ci'])}",
            "note": fit.get("bootstrap_note", ""),
        })
    return pd.DataFrame(rows)


def selection_frame(fit: Mapping[str, Any] | None) -> pd.DataFrame:
    """The four laws of one quantity: form, parameters, R², AIC, AICc (none where too few models) and BIC, with
    the distance from the best."""
    if not fit or fit.get("error"):
        return pd.DataFrame()
    rows = []
    for name, law in fit["laws"]["fits"].items():
        rows.append({"law": LAW_NAMES[name], "form": law["form"], "parameters": law["parameters"],
                     "R² (its own scale)": law["r2"], "AIC": law["aic"], "AICc": law.get("aicc"),
                     "ΔAICc": law.get("delta_aicc"), "BIC": law["bic"], "ΔBIC": law["delta_bic"]})
    return pd.DataFrame(rows)


def _stat(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return DASH
    return f"{fmt(stat['mean'])} {fmt_ci(stat.get('ci'))}"


def groups_frame(summary: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per model and component group: parameter share, mass share [CI], enrichment [CI]."""
    rows = []
    for model, facts in ((summary or {}).get("models") or {}).items():
        for group, entry in facts.get("groups", {}).items():
            if not entry.get("param_share"):
                continue
            rows.append({"model": short(model), "group": group, "seeds": facts.get("n_seeds"),
                         "parameter share": entry["param_share"], "mass share [95% CI]": _stat(entry["share"]),
                         "enrichment [95% CI]": _stat(entry["enrichment"])})
    return pd.DataFrame(rows)


def experts_frame(summary: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per MoE model: each expert's share of the expert matrices' mass, the max/min ratio, the router, and the
    Spearman ρ over (layer, expert) cells between an expert's share of its layer's mass and of its routed tokens."""
    rows = []
    for model, facts in ((summary or {}).get("models") or {}).items():
        moe = facts.get("moe")
        if not moe:
            continue
        row = {"model": short(model)}
        row.update({f"expert {e['expert']}": _stat(e["share"]) for e in moe["experts"]})
        row["max / min"] = _stat(moe["max_min_ratio"])
        router = moe.get("router") or {}
        row["router: parameter share"] = router.get("param_share")
        row["router: mass share"] = _stat(router.get("share"))
        row["router: enrichment"] = _stat(router.get("sensitivity"))
        follows = moe.get("utilisation") or {}
        row["sensitivity vs traffic: Spearman ρ"] = _stat(follows.get("spearman"))
        rows.append(row)
    return pd.DataFrame(rows)


def shifts_frame(summary: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per named shift and component: share of the base top-k the tuned model keeps, against chance."""
    rows = []
    for name, shift in ((summary or {}).get("shifts") or {}).items():
        rows.append({"shift": name, "component": "all matrices", "Jaccard [95% CI]": _stat(shift["jaccard"]),
                     "chance": _stat(shift["chance_jaccard"]), "over chance": _stat(shift["jaccard_over_chance"])})
        for component, entry in sorted(shift.get("components", {}).items()):
            rows.append({"shift": name, "component": component, "Jaccard [95% CI]": f"kept {_stat(entry['kept'])}",
                         "chance": _stat(entry["chance_kept"]), "over chance": DASH})
    return pd.DataFrame(rows)
