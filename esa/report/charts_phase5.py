"""Phase-5 charts: held-out PPL against sparsity per pruning arm (log scale, a panel per comparison group, the
dense model as a dashed rule), and for adaptation the gain on the new domain against forgetting of the original
one per arm (with 95% CIs on both axes) and the training-loss curves. They encode the frames of
esa.report.tables_phase5; call ``charts.setup()`` first for the SVG renderer and theme."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from esa.report.tables_phase5 import arm_order


def curve_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The chart's rows: one per arm, group and sparsity with a finite PPL (a log axis cannot place ∞; the table
    counts the diverged seeds), its CI envelope where finite, and one ``dense`` row per group for the rule."""
    if summary.empty:
        return pd.DataFrame(columns=["layer", "group", "arm", "sparsity", "ppl", "ci_low", "ci_high", "dense_ppl",
                                     "protected"])
    finite = np.isfinite(summary["ppl"].to_numpy(dtype=float))
    curves = summary.loc[finite, ["group", "arm", "sparsity", "ppl", "ci_low", "ci_high", "protected",
                                  "diverged", "seeds"]].assign(layer="curve")
    band_ok = np.isfinite(curves[["ci_low", "ci_high"]].to_numpy(dtype=float)).all(axis=1)
    curves.loc[~band_ok, ["ci_low", "ci_high"]] = math.nan
    dense = summary.groupby("group", as_index=False, sort=False)["dense_ppl"].mean().assign(layer="dense")
    return pd.concat([curves, dense], ignore_index=True)


def prune_chart(frame: pd.DataFrame) -> alt.FacetChart:
    """PPL against target sparsity, one line per arm (mean over seeds; band: the envelope of the seeds' 95%
    cluster-bootstrap CIs), protected arms dashed, the dense model's PPL as a dashed grey rule; log y axis."""
    arms = arm_order(frame.loc[frame["layer"] == "curve", "arm"])
    color = alt.Color("arm:N", sort=arms, title="arm",
                      legend=alt.Legend(symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=2))
    dash = alt.StrokeDash("protected:N", title="critical set kept",
                          scale=alt.Scale(domain=[False, True], range=[[1, 0], [6, 3]]))
    x = alt.X("sparsity:Q", title="target sparsity", axis=alt.Axis(format="%"))
    log = alt.Scale(type="log", zero=False)
    base = alt.Chart(frame)

    def only(layer: str, extra: str = "") -> alt.Chart:
        return base.transform_filter(f"datum.layer == '{layer}'{extra}")

    chart = alt.layer(
        only("curve").mark_line().encode(
            x=x, y=alt.Y("ppl:Q", scale=log, title="held-out PPL (log scale)"), color=color, strokeDash=dash),
        only("curve", " && isValid(datum.ci_low)").mark_area(opacity=0.15).encode(
            x=x, y=alt.Y("ci_low:Q", scale=log), y2="ci_high:Q", color=color),
        only("curve").mark_point(filled=True, size=30).encode(
            x=x, y=alt.Y("ppl:Q", scale=log), color=color,
            tooltip=["arm", "sparsity", "ppl", "ci_low", "ci_high", "diverged", "seeds"]),
        only("dense").mark_rule(color="#666", strokeDash=[4, 4]).encode(
            y=alt.Y("dense_ppl:Q", scale=log), tooltip=[alt.Tooltip("dense_ppl:Q", title="dense PPL")]),
    ).properties(width=300, height=220)
    groups = [g for g in ("row", "matrix") if g in set(frame["group"])] + \
        sorted(set(frame["group"]) - {"row", "matrix"})
    return chart.facet(column=alt.Column("group:N", sort=groups, title="comparison group"))


def adapt_chart(summary: pd.DataFrame) -> alt.LayerChart:
    """One point per arm (mean over seeds): forgetting of the original split (x, ΔNLL per token) against gain on
    the new domain (y, NLL per response token), with the seeds' 95% CI envelopes as error bars on both axes.
    Up and to the left is better: more learned, less forgotten."""
    order = list(summary["arm"])
    base = alt.Chart(summary).encode(color=alt.Color("arm:N", sort=order, title="arm"))
    x_title, y_title = "forgetting (ΔNLL per token, original split)", "gain (NLL per response token, new domain)"
    x, y = alt.X("forgetting:Q", title=x_title), alt.Y("gain:Q", title=y_title)
    return alt.layer(
        base.mark_rule().encode(x=alt.X("forgetting_ci_low:Q", title=x_title), x2="forgetting_ci_high:Q", y=y),
        base.mark_rule().encode(y=alt.Y("gain_ci_low:Q", title=y_title), y2="gain_ci_high:Q", x=x),
        base.mark_point(filled=True, size=80).encode(
            x=x, y=y, tooltip=["arm", "n_trainable", "gain", "forgetting", "gain_per_mparam"]),
        base.mark_text(align="left", dx=7, dy=-7).encode(x=x, y=y, text="arm:N"),
    ).properties(width=420, height=300)


def loss_chart(frame: pd.DataFrame) -> alt.Chart:
    """Training loss against step, one line per arm (mean over seeds)."""
    order = list(dict.fromkeys(frame["arm"]))
    return alt.Chart(frame).mark_line().encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
        color=alt.Color("arm:N", sort=order, title="arm"), tooltip=["arm", "step", "loss", "seeds"],
    ).properties(width=420, height=240)
