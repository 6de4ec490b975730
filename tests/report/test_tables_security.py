"""The Phase-5 security tables and charts (esa.report.tables_security, charts_security) on small frames."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from esa.report import charts_security as cs
from esa.report import tables_security as ts


def cell(fmt: str, rate: float, arm: str, collapsed: int, trials: int = 20) -> dict:
    return {"format": fmt, "rate": rate, "arm": arm, "collapsed": collapsed, "trials": trials,
            "collapse_rate": collapsed / trials, "ci_low": 0.0, "ci_high": 0.5, "mean_flips": 8.0}


RESULT = {"collapse": [cell("int8", 1e-4, "critical", 2), cell("fp32", 1e-5, "random", 4),
                       cell("int8", 1e-4, "none", 12), cell("int8", 1e-4, "random", 10),
                       cell("fp32", 1e-5, "none", 4), cell("fp32", 1e-5, "critical", 0)],
          "attacks": [{"format": "int8", "arm": a, "seed": s, "flips_to_collapse": n, "censored": n is None,
                       "budget": 6} for a, s, n in (("noncritical", 1, 5), ("noncritical", 2, None),
                                                    ("unrestricted", 2, 3), ("unrestricted", 1, 2))]}


def test_runs_are_picked_by_kind() -> None:
    spec = SimpleNamespace(runs=[SimpleNamespace(id="a", kind="faults"), SimpleNamespace(id="b", kind="prune")])
    assert [r.id for r in ts.fault_runs(spec)] == ["a"] and ts.fault_runs(None) == []


def test_collapse_frame_orders_formats_rates_and_arms() -> None:
    frame = ts.collapse_frame(RESULT)
    assert list(zip(frame["format"], frame["arm"])) == [("fp32", "none"), ("fp32", "critical"), ("fp32", "random"),
                                                         ("int8", "none"), ("int8", "critical"), ("int8", "random")]
    assert frame["arm_label"].iloc[1] == "critical set exempt" and ts.collapse_frame({}).empty


def test_collapse_table_has_a_column_per_arm_with_counts_and_cis() -> None:
    table = ts.collapse_table(ts.collapse_frame(RESULT))
    assert list(table.columns) == ["format", "rate", "mean flips", "nothing exempt", "critical set exempt",
                                   "matched random set exempt"]
    int8 = table.iloc[1]
    assert (int8["rate"], int8["mean flips"]) == ("1e-4", "8")
    assert int8["critical set exempt"] == "2/20 (10.0% [0.0%, 50.0%])"
    assert [ts.rate_label(r) for r in (1e-6, 2.5e-5, 0.001)] == ["1e-6", "2.5e-5", "1e-3"]


def test_attack_table_orders_arms_and_prints_whole_counts() -> None:
    attacks = pd.DataFrame([{"format": "int8", "arm": "unrestricted", "step": 1, "key": "model.layers.0.q.weight",
                             "index": 5, "bit": 6, "seed": 1}])
    table = ts.attack_table(RESULT, attacks)
    assert list(table["arm"]) == ["attack", "attack off the critical set"]
    assert list(table["flips to collapse (per seed)"]) == ["2 · 3", "5 · >6"]
    assert table["first flip"].iloc[0] == "layers.0.q.weight[5] bit 6" and table["first flip"].iloc[1] == ""
    assert ts.attack_table({}, attacks).empty


def test_attack_frame_is_the_run_with_the_ppl_factor() -> None:
    flips = pd.DataFrame({"run": ["r", "r", "s"], "arm": ["random", "noncritical", "random"],
                          "ppl": [40.0, math.inf, 1.0], "baseline_ppl": [20.0, 20.0, 1.0]})
    frame = ts.attack_frame(flips, "r")
    assert list(frame["ppl_factor"]) == [2.0, math.inf] and list(frame["arm_label"])[0] == "random flips"
    assert ts.attack_frame(None, "r").empty


def test_collapse_chart_ticks_the_measured_rates_and_panels_formats() -> None:
    spec = cs.collapse_chart(ts.collapse_frame(RESULT)).to_dict()
    assert spec["facet"]["column"]["field"] == "format" and spec["facet"]["column"]["sort"] == ["fp32", "int8"]
    layers = spec["spec"]["layer"]
    x = layers[0]["encoding"]["x"]
    assert x["scale"]["type"] == "log" and x["axis"]["values"] == [1e-5, 1e-4]
    assert (layers[1]["encoding"]["y"]["field"], layers[1]["encoding"]["y2"]["field"]) == ("ci_low", "ci_high")


def test_attack_chart_draws_a_non_finite_ppl_at_the_top_and_the_threshold() -> None:
    flips = ts.attack_frame(pd.DataFrame({"run": "r", "arm": ["unrestricted", "unrestricted"], "seed": 1,
                                          "step": [1, 2], "ppl": [30.0, math.inf], "baseline_ppl": 20.0,
                                          "key": "k", "index": 0, "bit": 6, "old_value": 0.0, "new_value": 1.0}),
                            "r")
    spec = cs.attack_chart(flips, 10.0).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert [v["shown"] for v in values if "shown" in v] == [1.5, 1e12]
    line, _, rule = spec["layer"]
    assert line["encoding"]["y"]["scale"]["type"] == "log" and line["encoding"]["detail"]["field"] == "seed"
    assert rule["mark"]["strokeDash"] == [4, 4]
