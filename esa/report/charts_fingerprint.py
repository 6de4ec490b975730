"""Backdoor-fingerprint chart: each sibling score by class, a dot per sibling (frames from
esa.report.tables_fingerprint)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from esa.report.tables_fingerprint import CLASSES


def score_strip(frame: pd.DataFrame) -> alt.FacetChart:
    """A dot per sibling and score, backdoored and clean side by side (one panel per score, own y scale): if the
    map fingerprints the backdoor, the two columns separate."""
    order = list(CLASSES.values())
    base = alt.Chart(frame).encode(
        x=alt.X("class:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("jitter:Q"),
        y=alt.Y("value:Q", title="score", scale=alt.Scale(zero=False)),
        color=alt.Color("class:N", sort=order, title="sibling"),
        tooltip=["seed", "sibling", "class", "value"])
    return base.mark_circle(size=60, opacity=0.8).transform_calculate(jitter="random()").properties(
        width=160, height=200).facet(column=alt.Column("score:N", title=None)).resolve_scale(y="independent")
