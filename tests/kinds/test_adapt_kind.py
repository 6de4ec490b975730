"""Run kind `adapt`: the adaptation stage on ref-tiny (every arm, a few steps on the instruction pairs), checked
against an arm retrained here, hand counts of the weights each arm trains, and the model on disk; its compile rule;
its graders."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes

STAGE = "adapt.phase5/ad/seed1"
BASELINE = "results/baselines/ref-tiny-stdlib-tiny/smoke-float32/fold0of2-seed1337"
ARMS = ["full", "frozen", "fisher", "top", "random", "bottom", "lora"]


def model_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def adapted(kinds_project, ref_tiny):
    before = model_hashes(ref_tiny)
    out = kinds_project.run(STAGE)
    baseline = pd.read_parquet(kinds_project.root / BASELINE / "sequences.parquet")
    return out, json.loads((out / "summary.json").read_text()), baseline, before


def test_every_arm_is_evaluated_on_the_baseline_windows_and_the_held_out_pairs(adapted):
    out, summary, baseline, _ = adapted
    conditions, domain = pd.read_parquet(out / "conditions.parquet"), pd.read_parquet(out / "domain.parquet")
    assert [a["arm"] for a in summary["arms"]] == ARMS
    for arm, rows in conditions.groupby("arm"):
        assert rows["window_id"].tolist() == baseline["window_id"].tolist(), arm
    pairs = domain[domain["arm"] == "before"]["window_id"].tolist()
    assert 0 < len(pairs) <= 12 and summary["n_heldout_pairs"] == len(pairs)
    for arm in ARMS:
        assert domain[domain["arm"] == arm]["window_id"].tolist() == pairs
        assert not np.array_equal(conditions[conditions["arm"] == arm]["nll_sum"], baseline["nll_sum"]), arm


def test_the_model_on_disk_is_never_written(adapted, ref_tiny):
    assert model_hashes(ref_tiny) == adapted[3]


def test_each_arm_trains_the_weights_it_names(adapted, ref_tiny):
    from esa.engine.models.loading import load_model
    from esa.engine.models.targets import scored_parameters

    summary = {a["arm"]: a for a in adapted[1]["arms"]}
    model, _ = load_model(str(ref_tiny))
    targets = scored_parameters(model)
    selected = sum(t.shape[0] * math.floor(0.05 * t.shape[1] + 1e-9) for t in targets)  # per row, 5%
    assert selected > 0
    assert summary["top"]["n_trainable"] == summary["random"]["n_trainable"] == summary["bottom"]["n_trainable"] \
        == selected
    everything = sum(p.numel() for p in model.parameters())
    assert summary["full"]["n_trainable"] == summary["fisher"]["n_trainable"] == everything
    assert summary["frozen"]["n_trainable"] == everything - selected
    lora = sum(2 * (t.shape[0] + t.shape[1]) for t in targets)  # rank 2: A (2 × in) and B (out × 2)
    assert summary["lora"]["n_trainable"] == lora


def test_the_top_arm_is_the_training_redone_here(kinds_project, adapted, ref_tiny):
    from esa.engine.adaptation.arms import ArmPlan, train_arm
    from esa.engine.adaptation.data import pair_loss, shifted_domain
    from esa.engine.adaptation.measure import pair_table
    from esa.engine.models.instruct import encode_pairs
    from esa.engine.models.loading import load_model
    from esa.engine.pruning.model_masks import load_metric_scores

    out = adapted[0]
    params = kinds_project.params["phase5"]["ad"]
    model, tok = load_model(str(ref_tiny))
    part, heldout = shifted_domain(tok, kinds_project.root / "data/stdlib-tiny", params["seed_plan"], 1, seq_len=192,
                                   heldout_pairs=12)
    train = encode_pairs(tok, part, 192)[:3]
    scores = load_metric_scores(kinds_project.root / "results/phase5/sc5/seed1", "grad_x_weight")
    result = train_arm(model, "top", pair_loss(*train), len(train[0]), ArmPlan(4, 2, 3e-4, 1, 0.05, "row"), scores)
    mine = pair_table(result.model, heldout, *encode_pairs(tok, heldout, 192)[:3], 2)
    domain = pd.read_parquet(out / "domain.parquet")
    theirs = domain[domain["arm"] == "top"]
    assert mine["window_id"].tolist() == theirs["window_id"].tolist()
    assert np.allclose(mine["nll_sum"], theirs["nll_sum"], rtol=1e-5, atol=1e-5)


def test_compile_reads_the_saved_scores_and_the_shared_baseline(kinds_project):
    stages = kinds_project.stages
    assert sorted(n for n in stages if n.startswith("adapt.")) == ["adapt.phase5/ad/seed1", "adapt.phase5/ad/seed2"]
    stage = stages["adapt.phase5/ad/seed2"]
    assert "--scores results/phase5/sc5/seed2 " in stage["cmd"]
    assert {"results/phase5/sc5/seed2/scores", f"{BASELINE}/sequences.parquet"} <= set(stage["deps"])
    params = kinds_project.params["phase5"]["ad"]
    assert params["seed_plan"] == [1, 2] and params["batch_size"] == 2 and params["eval_batch_size"] == 16
    assert "results/phase5/ad/seed1/domain.parquet" in stages["grade.phase5"]["deps"]


def test_the_grade_stage_grades_the_criterion(kinds_project):
    root = kinds_project.run("grade.phase5")
    grade = json.loads((root / "results/phase5/grades.json").read_text())["criteria"]["forget"]
    assert grade["status"] in ("pass", "fail", "inconclusive") and grade["value"] is not None
    table = pd.read_parquet(root / "results/phase5/adaptation.parquet")
    assert len(table) == 2 * len(ARMS) and set(table["arm"]) == set(ARMS)
    assert len(pd.read_parquet(root / "results/phase5/adaptation_curves.parquet")) > 0


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["adapt"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
