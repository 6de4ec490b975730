"""The Phase-5 interpretability tables and charts (esa.report.tables_interpret, charts_interpret) on small frames."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from esa.report import charts_interpret as ci
from esa.report import tables_interpret as ti

SW = {"weight": 0, "layer": 1, "param_name": "model.layers.1.mlp.down_proj.weight", "row": 7, "col": 3}


def effect(seed: int, **extra) -> dict:
    return {**SW, "seed": seed, "ppl_baseline": 20.0, "ppl_zeroed": 30.0, "ppl_ratio": 1.5, "ppl_ci_low": 1.4,
            "ppl_ci_high": 1.6, "sink_baseline": 0.6, "sink_zeroed": 0.4, "sink_shift": -0.2, "sink_ci_low": -0.25,
            "sink_ci_high": -0.15, "sink_layers": [2, 3], "n_windows": 12, "n_docs": 6, **extra}


def test_runs_are_picked_by_kind() -> None:
    spec = SimpleNamespace(runs=[SimpleNamespace(id="a", kind="interpret"), SimpleNamespace(id="b", kind="faults")])
    assert [r.id for r in ti.interpret_runs(spec)] == ["a"] and ti.interpret_runs(None) == []


def test_detector_text_names_the_weights_or_says_none_was_found_and_the_threshold() -> None:
    assert ti.weight_label(SW) == "layers.1.mlp.down_proj (7, 3)"
    gpt2 = {**SW, "param_name": "transformer.h.4.mlp.c_proj.weight"}
    assert ti.weight_label(gpt2) == "transformer.h.4.mlp.c_proj (7, 3)"
    found = ti.detector_text({"superweights": [effect(1)]}, 50.0, [1, 2], {})
    assert "threshold 50" in found and "`layers.1.mlp.down_proj (7, 3)` in layer 1 (seeds 1 only)" in found
    both = ti.detector_text({"superweights": [effect(1), effect(2)]}, 50.0, [1, 2], {1: {"detector": "1 found"}})
    assert "(seeds" not in both and both.endswith("Detector: 1 found.")
    none = ti.detector_text({"superweights": []}, 80.0, [1, 2],
                            {1: {"detector": "none found over 4 layers: a"}, 2: {"detector": "none found: b"}})
    assert "found **no super weight** in any seed (spike ratio threshold 80" in none
    assert "seed 1: none found over 4 layers: a; seed 2: none found: b." in none


def test_activation_frame_means_over_seeds_and_leaves_out_what_a_log_axis_cannot_place() -> None:
    rows = [{**SW, "run": "r", "seed": seed, "layer": layer, "condition": cond, "ratio": ratio,
             "sink_share": 0.5} for seed in (1, 2) for layer, cond, ratio in
            ((0, "baseline", 1.0 + seed), (1, "baseline", 40.0), (0, "zeroed", 0.0), (1, "zeroed", math.inf))]
    frame = ti.activation_frame(pd.DataFrame(rows + [{**rows[0], "run": "other"}]), "r")
    assert list(frame["ratio"]) == [2.5, 40.0] and set(frame["condition_label"]) == {"weight in place"}
    assert list(frame["sw_layer"]) == [1.0, 1.0] and frame["label"].iloc[0] == "layers.1.mlp.down_proj (7, 3)"
    assert ti.activation_frame(None, "r").empty and ti.activation_frame(pd.DataFrame(), "r").empty


def test_effect_table_cells_including_a_diverged_ppl_and_a_last_layer_weight() -> None:
    last = effect(2, ppl_ratio="inf", ppl_zeroed="inf", sink_shift=None, sink_layers=[],
                  reason="the super weight is in the last layer: no attention after it")
    table = ti.effect_table({"superweights": [last, effect(1)]})
    assert list(table["seed"]) == [1, 2]
    first, second = table.iloc[0], table.iloc[1]
    assert first["PPL ratio [95% CI]"] == "1.5 [1.4, 1.6]" and first["PPL in place → zeroed"] == "20 → 30"
    assert first["sink shift [95% CI]"] == "-0.2 [-0.25, -0.15]" and first["sink layers"] == "layers 2–3"
    assert first["windows (documents)"] == "12 (6)"
    assert second["PPL ratio [95% CI]"] == "∞ (diverged)" and second["PPL in place → zeroed"] == "20 → ∞"
    assert second["sink shift [95% CI]"].startswith("the super weight is in the last layer")
    assert second["sink layers"] == "—" and ti.effect_table({}).empty


def test_head_frame_is_long_and_averages_seeds() -> None:
    heads = pd.DataFrame([{"run": "r", "seed": seed, "layer": layer, "head": head, "total": layer + head + seed,
                           "entropy": 2.0 - 0.1 * head, "sink_share": 0.1 * seed}
                          for seed in (1, 2) for layer in range(2) for head in range(3)])
    frame = ti.head_frame(heads, "r")
    assert len(frame) == 2 * 3 * 2 and list(frame["stat"].unique()) == ["sink_share", "entropy"]
    row = frame[(frame["layer"] == 1) & (frame["head"] == 2) & (frame["stat"] == "sink_share")].iloc[0]
    assert row["total"] == 4.5 and math.isclose(row["value"], 0.15)
    assert ti.head_frame(None, "r").empty and ti.head_frame(heads, "other").empty


def test_correlation_cells_and_the_caption_text() -> None:
    result = {"head_correlations": [
        {"seed": 2, "count": "total", "stat": "entropy", "rho": -0.5, "ci_low": float("nan"), "ci_high": 0.1,
         "n_heads": 16, "n_layers": 4},
        {"seed": 1, "count": "total", "stat": "sink_share", "rho": 0.61, "ci_low": 0.2, "ci_high": 0.9,
         "n_heads": 16, "n_layers": 4},
        {"seed": 1, "count": "q", "stat": "sink_share", "rho": 0.1, "ci_low": 0, "ci_high": 0.2, "n_heads": 16,
         "n_layers": 4}]}
    table = ti.correlation_table(result)
    assert list(table["statistic"]) == ["sink share (attention on the first token)", "attention entropy (nats)"]
    assert list(table["Spearman rho [95% CI]"]) == ["0.61 [0.2, 0.9]",
                                                    "-0.5 (no interval: too few layers with differing counts)"]
    assert ti.rho_text(result, "sink_share") == "ρ = 0.61 [0.2, 0.9] (seed 1)"
    assert ti.rho_cell({"rho": "nan"}).startswith("undefined") and ti.rho_text({}, "entropy") == "—"


def test_probe_frame_order_and_the_drop_table() -> None:
    accuracy = pd.DataFrame([{"run": "r", "seed": 1, "condition": c, "category": "keyword", "accuracy": a, "n": n}
                             for c, a, n in (("random", 0.8, 30), ("topk", 0.3, 10), ("baseline", 0.9, 10))])
    frame = ti.probe_frame(accuracy, "r")
    assert list(frame["condition_label"]) == ["model as is", "critical set zeroed", "random set zeroed"]
    drops = ti.drop_table({"probe_drops": [
        {"seed": 1, "category": "stdlib", "measure": "logprob", "n_items": 8, "baseline": -1.5, "topk": -3.0,
         "random": -2.0, "drop": 1.0, "ci_low": 0.5, "ci_high": 1.5},
        {"seed": 1, "category": "stdlib", "measure": "accuracy", "n_items": 8, "baseline": 0.75, "topk": 0.25,
         "random": 0.625, "drop": 0.375, "ci_low": 0.125, "ci_high": 0.625},
        {"seed": 1, "category": "builtin", "measure": "accuracy", "n_items": 10, "baseline": 0.8, "topk": 0.7,
         "random": 0.7, "drop": -4.4e-17, "ci_low": -0.4, "ci_high": 0.433}]})
    assert list(zip(drops["category"], drops["measure"])) == [("builtin", "accuracy"), ("stdlib", "accuracy"),
                                                              ("stdlib", "logprob")]
    assert list(drops["drop (random − critical) [95% CI]"]) == ["0 [-0.4, 0.433]", "0.375 [0.125, 0.625]",
                                                                "1 [0.5, 1.5]"]
    assert ti.probe_frame(None, "r").empty


def marks(layers: list[dict]) -> list[str]:
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]


def test_activation_chart_is_a_log_ratio_per_layer_with_both_rules() -> None:
    rows = [{**SW, "run": "r", "seed": 1, "layer": layer, "condition": cond, "ratio": ratio, "sink_share": 0.5}
            for layer, cond, ratio in ((0, "baseline", 0.6), (1, "baseline", 40.0), (0, "zeroed", 0.6),
                                       (1, "zeroed", 0.9))]
    spec = ci.activation_chart(ti.activation_frame(pd.DataFrame(rows), "r")).to_dict()
    assert spec["facet"]["column"]["field"] == "label"
    layers = spec["spec"]["layer"]
    assert marks(layers) == ["line", "point", "rule", "rule"]
    line, _, ratio_one, own_layer = layers
    assert line["encoding"]["y"]["scale"]["type"] == "log" and line["encoding"]["x"]["field"] == "layer"
    assert line["encoding"]["color"]["sort"] == ["weight in place", "weight zeroed"]
    assert ratio_one["encoding"]["y"]["datum"] == 1 and own_layer["encoding"]["x"]["field"] == "sw_layer"


def test_head_chart_is_a_point_per_head_coloured_by_layer_a_panel_per_statistic() -> None:
    heads = pd.DataFrame([{"run": "r", "seed": 1, "layer": layer, "head": head, "total": head,
                           "entropy": 2.0 - head, "sink_share": 0.1 * head} for layer in range(3) for head in range(2)])
    spec = ci.head_chart(ti.head_frame(heads, "r")).to_dict()
    assert spec["facet"]["column"]["field"] == "stat_label" and spec["resolve"]["scale"]["y"] == "independent"
    enc = spec["spec"]["encoding"]
    assert (enc["x"]["field"], enc["y"]["field"], enc["color"]["field"]) == ("total", "value", "layer")
    assert spec["spec"]["mark"]["type"] == "circle" and enc["color"]["scale"]["domain"] == [0, 2]


def test_probe_chart_groups_bars_by_condition_with_a_dot_per_seed() -> None:
    accuracy = pd.DataFrame([{"run": "r", "seed": s, "condition": c, "category": "keyword", "accuracy": 0.5, "n": 10}
                             for s in (1, 2) for c in ("baseline", "topk", "random")])
    spec = ci.probe_chart(ti.probe_frame(accuracy, "r")).to_dict()
    bars, dots = spec["layer"]
    assert marks(spec["layer"]) == ["bar", "point"]
    assert bars["encoding"]["y"]["aggregate"] == "mean" and bars["encoding"]["color"]["field"] == "condition_label"
    assert all(layer["encoding"]["xOffset"]["field"] == "condition_label" for layer in spec["layer"])
    assert dots["encoding"]["y"]["field"] == "accuracy"
