"""Phase-5 security charts: collapse rate against bit-error rate per storage format and arm (log x, Wilson 95%
CIs), and held-out PPL after each flip of the attack arms (log y, the collapse threshold as a dashed rule). They
encode the frames of esa.report.tables_security; call ``charts.setup()`` first."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from esa.report.tables_security import ARM_LABELS, ATTACK_LABELS, FORMAT_ORDER


def collapse_chart(frame: pd.DataFrame) -> alt.FacetChart:
    """Collapse rate against rate, a line per arm, a panel per storage format; bars: Wilson 95% CIs."""
    order = [ARM_LABELS[a] for a in ARM_LABELS if ARM_LABELS[a] in set(frame["arm_label"])]
    color = alt.Color("arm_label:N", sort=order, title="protection", legend=alt.Legend(labelLimit=240))
    # Ticks at the measured rates only: a log axis' own ticks between decades overprint one another.
    rates = sorted(float(r) for r in set(frame["rate"]))
    x = alt.X("rate:Q", scale=alt.Scale(type="log"), title="bit-error rate (per stored bit)",
              axis=alt.Axis(format=".0e", values=rates))
    y = alt.Y("collapse_rate:Q", title="share of trials collapsed", axis=alt.Axis(format="%"),
              scale=alt.Scale(domain=[0, 1]))
    base = alt.Chart(frame).encode(x=x, color=color)
    chart = alt.layer(
        base.mark_line(),
        base.mark_rule().encode(y=alt.Y("ci_low:Q", title=None), y2="ci_high:Q"),
        base.mark_point(filled=True, size=30).encode(
            y=y, tooltip=["format", "rate", "arm", "collapsed", "trials", "ci_low", "ci_high", "mean_flips"]),
    ).encode(y=y).properties(width=250, height=200)
    formats = [f for f in FORMAT_ORDER if f in set(frame["format"])]
    return chart.facet(column=alt.Column("format:N", sort=formats, title="stored as"))


def attack_chart(frame: pd.DataFrame, collapse_factor: float) -> alt.LayerChart:
    """PPL / baseline after each flip, one line per arm and seed (log y); the collapse threshold dashed."""
    frame = frame.assign(shown=frame["ppl_factor"].where(frame["ppl_factor"].map(math.isfinite), 1e12))
    order = [ATTACK_LABELS[a] for a in ATTACK_LABELS if ATTACK_LABELS[a] in set(frame["arm_label"])]
    color = alt.Color("arm_label:N", sort=order, title="arm", legend=alt.Legend(labelLimit=240))
    y = alt.Y("shown:Q", scale=alt.Scale(type="log"), title="PPL / baseline (log)",
              axis=alt.Axis(format=".0e"))
    x = alt.X("step:Q", title="flips made", axis=alt.Axis(format="d", tickMinStep=1))
    lines = alt.Chart(frame).encode(x=x, y=y, color=color,
                                    detail="seed:N")
    rule = alt.Chart(pd.DataFrame({"factor": [collapse_factor]})).mark_rule(color="#666", strokeDash=[4, 4]).encode(
        y="factor:Q")
    return alt.layer(
        lines.mark_line(),
        lines.mark_point(filled=True, size=25).encode(tooltip=["arm", "seed", "step", "key", "index", "bit",
                                                               "old_value", "new_value", "ppl"]),
        rule,
    ).properties(width=420, height=260)
