"""Run kind `interpret`: the interpretability stage on ref-tiny (super weights at a low detector threshold, heads,
two probe categories), checked against values recomputed here; its compile rule; its graders; the model on disk is
never written."""

from __future__ import annotations

import hashlib
import json
import math

import pandas as pd
import pytest
import torch
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes

STAGE = "interpret.interpret/ip/seed1"


def model_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def interpret_run(kinds_project, ref_tiny):
    before = model_hashes(ref_tiny)
    out = kinds_project.run(STAGE)
    tables = {name: pd.read_parquet(out / f"{name}.parquet") for name in ("activations", "windows", "heads",
                                                                          "probes")}
    return out, tables, json.loads((out / "summary.json").read_text()), before


def test_the_model_on_disk_is_never_written(interpret_run, ref_tiny):
    assert model_hashes(ref_tiny) == interpret_run[3]


def test_super_weights_are_the_detectors_and_zeroing_one_is_measured_on_every_window(interpret_run, ref_tiny):
    from esa.engine.models.loading import load_model
    from esa.engine.scoring.superweight import SUPERWEIGHT_PROMPT, detect_superweights

    _, tables, summary, _ = interpret_run
    model, tok = load_model(str(ref_tiny))
    report = detect_superweights(model, torch.tensor(tok(SUPERWEIGHT_PROMPT)["input_ids"]), threshold=1.02)
    assert [(s["param_name"], s["row"], s["col"]) for s in summary["superweights"]] == \
        [(c.param_name, c.row, c.col) for c in report.candidates]
    assert summary["superweights"], "the low threshold should flag at least one weight of ref-tiny"
    windows, activations = tables["windows"], tables["activations"]
    n_layers = model.config.num_hidden_layers
    conditions = ["baseline", *(f"zeroed:{s['weight']}" for s in summary["superweights"])]
    assert sorted(set(windows["condition"])) == sorted(conditions)
    per = windows.groupby("condition")["window_id"].nunique()
    assert set(per) == {summary["n_windows"]} and len(windows) == len(conditions) * summary["n_windows"] * n_layers
    assert windows["sink"].between(0, 1).all()
    first = activations[activations["weight"] == 0]
    assert sorted(set(first["condition"])) == ["baseline", "zeroed"] and len(first) == 2 * n_layers
    sw = summary["superweights"][0]
    # Zeroing the weight changes the activation it writes at its own layer.
    at = first[first["layer"] == sw["layer"]].set_index("condition")["value"]
    assert at["baseline"] != at["zeroed"]


def test_heads_hold_the_critical_counts_of_the_top_k_table(interpret_run, kinds_project, ref_tiny):
    from esa.engine.interpret.heads import HeadGeometry, critical_head_counts
    from esa.engine.models.loading import load_model

    _, tables, summary, _ = interpret_run
    topk = pd.read_parquet(kinds_project.root / "results/phase2/sc/seed1/topk.parquet")
    critical = topk[(topk["metric"] == "grad_x_weight") & (topk["mode"] == "per_layer") & (topk["rank"] < 8)]
    assert summary["n_critical"] == len(critical)
    expected = critical_head_counts(critical.reset_index(drop=True), HeadGeometry.of(load_model(str(ref_tiny))[0]))
    heads = tables["heads"]
    assert heads[["layer", "head", "q", "k", "v", "o", "total"]].reset_index(drop=True).equals(
        expected[["layer", "head", "q", "k", "v", "o", "total"]].reset_index(drop=True))
    assert heads["total"].sum() > 0
    assert heads["entropy"].between(0, heads["uniform_entropy"] + 1e-9).all()


def test_probes_score_every_kept_item_in_every_condition(interpret_run):
    _, tables, summary, _ = interpret_run
    probes = tables["probes"]
    kept = {p["category"]: p["n_kept"] for p in summary["probes"]}
    assert set(kept) == {"keyword", "builtin"}
    for (condition, draw), rows in probes.groupby(["condition", "draw"]):
        assert rows.groupby("category")["item"].nunique().to_dict() == {c: n for c, n in kept.items() if n}
    assert sorted(set(zip(probes["condition"], probes["draw"]))) == [("baseline", 0), ("random", 0), ("random", 1),
                                                                     ("topk", 0)]
    n_zeroed = probes.groupby("condition")["n_zeroed"].first()
    assert n_zeroed["topk"] == n_zeroed["random"] > 0


def test_compile_reads_the_critical_set_of_the_paired_seed(kinds_project):
    stages = kinds_project.stages
    assert sorted(n for n in stages if n.startswith("interpret.")) == ["interpret.interpret/ip/seed1",
                                                                       "interpret.interpret/ip/seed2"]
    for seed in (1, 2):
        stage = stages[f"interpret.interpret/ip/seed{seed}"]
        assert f"--critical results/phase2/sc/seed{seed} " in stage["cmd"]
        assert f"results/phase2/sc/seed{seed}/topk.parquet" in stage["deps"]
    params = kinds_project.params["interpret"]["ip"]
    assert params["seed_plan"] == [1, 2] and params["max_windows"] == 3 and params["superweight_threshold"] == 1.02
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["grade.interpret"]["outs"]]
    assert {"results/interpret/head_critical.parquet", "results/interpret/probe_accuracy.parquet"} <= set(outs)


def test_seeds_evaluate_disjoint_documents(kinds_project, interpret_run):
    other = kinds_project.run("interpret.interpret/ip/seed2")
    first = set(interpret_run[1]["windows"]["doc_id"])
    assert first and not first & set(pd.read_parquet(other / "windows.parquet")["doc_id"])


def test_the_grade_stage_grades_the_criteria(kinds_project):
    root = kinds_project.run("grade.interpret")
    grades = json.loads((root / "results/interpret/grades.json").read_text())
    for criterion in ("sink", "heads", "kw"):
        assert grades["criteria"][criterion]["status"] in ("pass", "fail", "inconclusive")
    assert "attention-sink mass" in grades["criteria"]["sink"]["reason"]
    assert "keyword probe accuracy" in grades["criteria"]["kw"]["reason"]
    accuracy = pd.read_parquet(root / "results/interpret/probe_accuracy.parquet")
    assert set(accuracy["condition"]) == {"baseline", "topk", "random"}
    assert not math.isnan(accuracy["accuracy"].sum())


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["interpret"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
