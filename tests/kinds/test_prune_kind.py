"""Run kind `prune`: the pruning stage on ref-tiny (magnitude, grad_x_weight and random masks at two sparsities,
per row and per matrix, and magnitude with the critical set kept), checked against masks and evaluations redone
here; its compile rule; its graders; the model on disk is never written."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes

STAGE = "prune.phase5/pr/seed1"
BASELINE = "results/baselines/ref-tiny-stdlib-tiny/smoke-float32/fold0of2-seed1337"
ARMS = ["magnitude", "grad_x_weight", "random", "magnitude+protected", "random+protected"]
SPARSITIES, GROUPS = [0.3, 0.6], ["row", "matrix"]


def model_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def pruned_run(kinds_project, ref_tiny):
    before = model_hashes(ref_tiny)
    out = kinds_project.run(STAGE)
    baseline = pd.read_parquet(kinds_project.root / BASELINE / "sequences.parquet")
    return out, pd.read_parquet(out / "conditions.parquet"), baseline, before


def test_one_row_per_condition_and_baseline_window(pruned_run):
    _, conditions, baseline, _ = pruned_run
    keys = sorted(set(zip(conditions["arm"], conditions["group"], conditions["sparsity"])))
    assert keys == sorted((a, g, s) for a in ARMS for g in GROUPS for s in SPARSITIES)
    for _, rows in conditions.groupby(["arm", "group", "sparsity"]):
        assert rows["window_id"].tolist() == baseline["window_id"].tolist()
    assert not conditions["diverged"].any()


def test_the_model_on_disk_is_never_written(pruned_run, ref_tiny):
    assert model_hashes(ref_tiny) == pruned_run[3]


def test_achieved_sparsity_is_the_exact_count_per_row_or_matrix(pruned_run, ref_tiny):
    from esa.engine.models.loading import load_model
    from esa.engine.models.targets import scored_parameters

    out = pruned_run[0]
    model, _ = load_model(str(ref_tiny))
    shapes = {t.key: t.shape for t in scored_parameters(model)}
    zeros_before = {t.key: int((t.weight() == 0).sum()) for t in scored_parameters(model)}
    assert not any(zeros_before.values())  # a trained model: every zero below is a pruned weight
    table = pd.read_parquet(out / "sparsity.parquet")
    for row in table.itertuples():
        rows, cols = shapes[row.name]
        expected = rows * math.floor(row.sparsity * cols + 1e-9) if row.group == "row" else \
            math.floor(row.sparsity * rows * cols + 1e-9)
        assert row.zeros == expected, (row.name, row.arm, row.group, row.sparsity)
    summary = json.loads((out / "summary.json").read_text())
    for condition in summary["conditions"]:
        part = table[(table["arm"] == condition["arm"]) & (table["group"] == condition["group"])
                     & (table["sparsity"] == condition["sparsity"])]
        assert condition["n_pruned"] == part["zeros"].sum() and condition["n_scored"] == part["n"].sum()
        assert condition["n_target"] == condition["n_pruned"] and condition["shortfall"] == 0


def test_magnitude_per_row_is_the_evaluation_redone_by_hand(kinds_project, pruned_run, ref_tiny):
    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import evaluate_windows, prepare_windows
    from esa.engine.models.loading import load_model
    from esa.engine.models.targets import scored_parameters

    _, conditions, baseline, _ = pruned_run
    model, tok = load_model(str(ref_tiny))
    with torch.no_grad():
        for target in scored_parameters(model):
            w = target.weight()
            k = math.floor(0.6 * w.shape[1] + 1e-9)
            smallest = torch.argsort(w.abs(), dim=1, stable=True)[:, :k]  # |w| has no ties in a trained model
            w.scatter_(1, smallest, 0.0)
    prepared = prepare_windows(tok, load_split(kinds_project.root / "data/stdlib-tiny", "evaluation"), context=128,
                               stride=64, max_windows=64, seed=1337, folds=2, fold=0)
    _, frame = evaluate_windows(model, prepared, batch_size=16, device=torch.device("cpu"), progress=False)
    rows = conditions[(conditions["arm"] == "magnitude") & (conditions["group"] == "row")
                      & (conditions["sparsity"] == 0.6)]
    assert np.allclose(rows["nll_sum"], frame["nll_sum"], rtol=1e-6, atol=1e-6)
    assert rows["nll_sum"].sum() > baseline["nll_sum"].sum()  # pruning 60% hurts


def test_the_protected_arm_keeps_the_critical_set(kinds_project, pruned_run, ref_tiny):
    from esa.engine.models.loading import load_model
    from esa.engine.pruning.conditions import protected_positions
    from esa.engine.pruning.model_masks import model_masks

    out, conditions, _, _ = pruned_run
    topk = pd.read_parquet(kinds_project.root / "results/phase2/sc/seed1/topk.parquet")
    shield = protected_positions(topk, metric="grad_x_weight", mode="per_layer", k=4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_protected"] == sum(map(len, shield.values())) > 0
    model, _ = load_model(str(ref_tiny))
    plain = model_masks(model, "random", 0.6, "row", seed=1)
    kept = model_masks(model, "random", 0.6, "row", seed=1, protected=shield)
    hit = sum(bool(plain[key][r, c]) for key, pos in shield.items() for r, c in pos)
    assert hit > 0  # random masks alone prune some critical weights, so the arms differ
    assert not any(bool(kept[key][r, c]) for key, pos in shield.items() for r, c in pos)

    def nll(arm):
        return conditions[(conditions["arm"] == arm) & (conditions["group"] == "row")
                          & (conditions["sparsity"] == 0.6)]["nll_sum"].to_numpy()

    assert not np.array_equal(nll("random+protected"), nll("random"))
    # grad_x_weight's top weights are large ones, which magnitude pruning keeps anyway: the arms coincide.
    assert not sum(bool(model_masks(model, "magnitude", 0.6, "row")[key][r, c])
                   for key, pos in shield.items() for r, c in pos)
    assert np.array_equal(nll("magnitude+protected"), nll("magnitude"))


def test_compile_reads_the_saved_scores_of_the_paired_seed_and_the_shared_baseline(kinds_project):
    stages = kinds_project.stages
    assert sorted(n for n in stages if n.startswith("prune.")) == ["prune.phase5/pr/seed1", "prune.phase5/pr/seed2"]
    for seed in (1, 2):
        stage, scores = stages[f"prune.phase5/pr/seed{seed}"], f"results/phase2/sc/seed{seed}"
        assert f"--scores {scores} " in stage["cmd"] and f"--protect {scores} " in stage["cmd"]
        assert {f"{scores}/scores", f"{scores}/topk.parquet", f"{BASELINE}/sequences.parquet"} <= set(stage["deps"])
    params = kinds_project.params["phase5"]["pr"]
    assert params["score_seeds"] == [1, 2] and params["sparsities"] == SPARSITIES
    assert params["protect"] == {"metric": "grad_x_weight", "mode": "per_layer", "k": 4,
                                 "methods": ["magnitude", "random"]}
    assert (params["folds"], params["fold"], params["eval_seed"]) == (2, 0, 1337)
    assert "results/phase5/pr/seed1/conditions.parquet" in stages["grade.phase5"]["deps"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["grade.phase5"]["outs"]]
    assert "results/phase5/pruning.parquet" in outs  # kept in git beside grades.json (cache: false)


def test_the_grade_stage_grades_the_criterion(kinds_project):
    root = kinds_project.run("grade.phase5")
    grades = json.loads((root / "results/phase5/grades.json").read_text())
    adv = grades["criteria"]["adv"]
    assert adv["status"] in ("pass", "fail", "inconclusive") and adv["value"] is not None
    assert adv["reason"].startswith("CI [") and "PPL(magnitude) / PPL(random) at sparsity 0.6" in adv["reason"]
    curves = pd.read_parquet(root / "results/phase5/pruning.parquet")
    assert len(curves) == 2 * len(ARMS) * len(GROUPS) * len(SPARSITIES)


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["prune"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
