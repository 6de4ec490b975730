"""Phase-4 charts: each quantity against N on log–log axes (seeds, model means, the fitted power law with its
bootstrap band, leave-one-out predictions), the residuals of the fit, and the architecture panels (component-group
shares per model, and the sensitivity profile over depth)."""

from __future__ import annotations

from typing import Any, Mapping

import altair as alt
import numpy as np
import pandas as pd

from esa.report.tables_phase4 import short


def points_frame(table: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Per-seed values of a scaling run (pairs of seeds for the Jaccard), positive ones only (log axes)."""
    rows = table[(table["run"] == run_id) & (table["value"] > 0)].copy()
    rows["model"] = rows["model"].map(short)
    return rows[["model", "n_params", "quantity", "value"]]


def fit_frames(summary: Mapping[str, Any] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, models): the fitted law and its band per quantity; per model its mean, LOO prediction, residual."""
    curves, models = [], []
    for quantity, fit in ((summary or {}).get("quantities") or {}).items():
        if fit.get("error"):
            continue
        curve = fit["curve"]
        band = curve["low"] is not None
        for i, n in enumerate(curve["n_params"]):
            curves.append({"quantity": quantity, "n_params": n, "fit": curve["fit"][i],
                           "low": curve["low"][i] if band else None, "high": curve["high"][i] if band else None})
        power = fit["power_law"]
        for row in fit["models"]:
            law = float(np.exp(power["log_a"]) * row["n_params"] ** power["alpha"])
            models.append({"quantity": quantity, "model": short(row["model"]), "n_params": row["n_params"],
                           "mean": row["mean"], "loo_prediction": row["loo_prediction"],
                           "loo_error": row["loo_relative_error"], "residual": float(np.log(row["mean"] / law))})
    return pd.DataFrame(curves), pd.DataFrame(models)


def scaling_chart(points: pd.DataFrame, curves: pd.DataFrame, models: pd.DataFrame, columns: int = 3) -> alt.FacetChart:
    """One log–log panel per fitted quantity: seeds (grey), model means (red), the fitted power law (line) with its
    95% bootstrap band, and each model's leave-one-out prediction (orange diamonds)."""
    x = alt.X("n_params:Q", title="N (parameters)", scale=alt.Scale(type="log"))
    log = alt.Scale(type="log", zero=False)
    fitted = set(curves["quantity"]) if len(curves) else set()
    # A facet draws every layer from one frame: the three sources stacked, told apart by `layer`.
    data = pd.concat([curves.assign(layer="curve"), points[points["quantity"].isin(fitted)].assign(layer="seed"),
                      models.assign(layer="model")], ignore_index=True)
    base = alt.Chart(data)

    def only(layer: str, extra: str = "") -> alt.Chart:
        return base.transform_filter(f"datum.layer == '{layer}'{extra}")

    chart = alt.layer(
        only("curve", " && isValid(datum.low)").mark_area(opacity=0.18, color="#4c78a8").encode(
            x=x, y=alt.Y("low:Q", scale=log, title="value (log scale)"), y2="high:Q"),
        only("curve").mark_line(color="#4c78a8").encode(x=x, y=alt.Y("fit:Q", scale=log)),
        only("seed").mark_point(opacity=0.45, size=25, color="#555").encode(x=x, y=alt.Y("value:Q", scale=log)),
        only("model").mark_point(filled=True, size=70, color="#e45756").encode(
            x=x, y=alt.Y("mean:Q", scale=log), tooltip=["model", "mean", "loo_prediction", "loo_error"]),
        only("model").mark_point(shape="diamond", size=80, color="#f58518").encode(
            x=x, y=alt.Y("loo_prediction:Q", scale=log)),
    ).properties(width=220, height=170)
    return chart.facet(facet=alt.Facet("quantity:N", title=None), columns=columns).resolve_scale(y="independent")


def residual_chart(models: pd.DataFrame) -> alt.FacetChart:
    """log(observed mean / power law) per model: structure here (a bend, a trend) is what R² hides."""
    x = alt.X("n_params:Q", title="N (parameters)", scale=alt.Scale(type="log"))
    base = alt.Chart(models)
    rule = base.mark_rule(color="#999").encode(y=alt.datum(0))
    dots = base.mark_point(filled=True, size=60, color="#e45756").encode(
        x=x, y=alt.Y("residual:Q", title="log residual"), tooltip=["model", "residual"])
    return (rule + dots).properties(width=220, height=120).facet(
        facet=alt.Facet("quantity:N", title=None), columns=3)


def groups_chart(summary: Mapping[str, Any] | None) -> alt.Chart:
    """Share of the score mass per component group and model (bars: mean over seeds, rules: 95% CI), next to the
    group's share of parameters (ticks)."""
    rows = []
    for model, facts in ((summary or {}).get("models") or {}).items():
        for group, entry in facts.get("groups", {}).items():
            share = entry.get("share") or {}
            if not entry.get("param_share") or share.get("mean") is None:
                continue
            ci = share.get("ci") or [None, None]
            rows.append({"model": short(model), "group": group, "share": share["mean"], "low": ci[0], "high": ci[1],
                         "param_share": entry["param_share"]})
    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys(frame["model"])) if len(frame) else []  # the spec's order, in every layer
    base = alt.Chart(frame).encode(x=alt.X("model:N", title=None, sort=order), xOffset="group:N")
    bars = base.mark_bar().encode(y=alt.Y("share:Q", title="share of score mass"), color=alt.Color("group:N"))
    rules = base.mark_rule(color="black").encode(y="low:Q", y2="high:Q")
    ticks = base.mark_tick(color="black", thickness=2, size=10).encode(y="param_share:Q")
    return (bars + rules + ticks).properties(height=240, width=alt.Step(16))


def depth_chart(layers: pd.DataFrame) -> alt.Chart:
    """Enrichment (mass share / parameter share) of each layer against its depth normalised to [0, 1]."""
    frame = layers.assign(model=layers["model"].map(short))
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("depth:Q", title="depth ((layer + ½) / layers)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("enrichment:Q", title="enrichment (mass share / parameter share)"),
        color=alt.Color("model:N"), tooltip=["model", "layer", "share", "enrichment"]).properties(height=240, width=420)
