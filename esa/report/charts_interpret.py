"""Phase-5 interpretability charts: the super weight's massive activation layer by layer with the weight in place
and zeroed (log y), critical weights per attention head against its sink share and entropy (a point per head,
coloured by layer), and probe accuracy per category under the model as is, the critical set zeroed and random sets
zeroed. They encode the frames of esa.report.tables_interpret; call ``charts.setup()`` first."""

from __future__ import annotations

import altair as alt
import pandas as pd

from esa.report.tables_interpret import HEAD_STATS, PROBE_CONDITIONS, SW_CONDITIONS


def activation_chart(frame: pd.DataFrame) -> alt.FacetChart:
    """Activation ratio at the super weight's dimension per layer (log y), a line per condition, a panel per super
    weight; dashed grey rule at ratio 1 (above it the dimension outweighs every other), dotted rule at the
    weight's own layer."""
    order = [SW_CONDITIONS[c] for c in SW_CONDITIONS if SW_CONDITIONS[c] in set(frame["condition_label"])]
    color = alt.Color("condition_label:N", sort=order, title="condition", legend=alt.Legend(labelLimit=240))
    x = alt.X("layer:Q", title="decoder layer", axis=alt.Axis(format="d", tickMinStep=1))
    y = alt.Y("ratio:Q", scale=alt.Scale(type="log"),
              title="massive-activation ratio (log)")
    base = alt.Chart(frame)
    chart = alt.layer(
        base.mark_line().encode(x=x, y=y, color=color),
        base.mark_point(filled=True, size=40).encode(
            x=x, y=y, color=color, tooltip=["label", "layer", "condition", "ratio", "sink_share"]),
        base.mark_rule(color="#666", strokeDash=[4, 4]).encode(y=alt.datum(1)),
        base.mark_rule(color="#999", strokeDash=[1, 3]).encode(x=alt.X("min(sw_layer):Q")),
    ).properties(width=320, height=220)
    labels = list(dict.fromkeys(frame.sort_values("weight")["label"]))
    return chart.facet(column=alt.Column("label:N", sort=labels, title="super weight"))


def head_chart(frame: pd.DataFrame) -> alt.FacetChart:
    """A point per attention head: critical weights in its q/k/v/o slices (x) against its sink share and its
    attention entropy (a panel each, own y scales), coloured by layer."""
    stats = [HEAD_STATS[s] for s in HEAD_STATS if HEAD_STATS[s] in set(frame["stat_label"])]
    n_layers = int(frame["layer"].max()) + 1 if len(frame) else 1
    chart = alt.Chart(frame).mark_circle(size=55, opacity=0.8).encode(
        x=alt.X("total:Q", title="critical weights in the head"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("layer:Q", title="layer", scale=alt.Scale(scheme="viridis", domain=[0, max(n_layers - 1, 1)]),
                        legend=alt.Legend(format="d")),
        tooltip=["layer", "head", "total", "stat", "value"],
    ).properties(width=300, height=240)
    return chart.facet(column=alt.Column("stat_label:N", sort=stats, title=None)).resolve_scale(y="independent")


def probe_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Accuracy per probe category: a bar per condition (mean over seeds), a dot per seed."""
    order = [PROBE_CONDITIONS[c] for c in PROBE_CONDITIONS if PROBE_CONDITIONS[c] in set(frame["condition_label"])]
    x = alt.X("category:N", title="probe category", axis=alt.Axis(labelAngle=0))
    offset = alt.XOffset("condition_label:N", sort=order)
    y = alt.Y("accuracy:Q", title="top-1 accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    base = alt.Chart(frame).encode(x=x, xOffset=offset)
    return alt.layer(
        base.mark_bar(opacity=0.85).encode(
            y=alt.Y("mean(accuracy):Q", title="top-1 accuracy", scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(format="%")),
            color=alt.Color("condition_label:N", sort=order, title="condition")),
        base.mark_point(filled=True, size=30, color="#222").encode(
            y=y, tooltip=["category", "condition", "seed", "accuracy", "n"]),
    ).properties(width=alt.Step(28), height=240)
