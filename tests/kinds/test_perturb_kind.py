"""Run kind `perturb`: the perturbation stage on ref-tiny (scale at level -1, a sign flip, and at level 1, the
identity), checked against the shared baseline and a sign flip redone here; its compile rule; its graders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes

from esa.engine.perturbation.controls import super_set

STAGE = "perturb.phase3/flip/seed1"
BASELINE = "results/baselines/ref-tiny-stdlib-tiny/smoke-float32/fold0of2-seed1337"
K, LEVELS, TARGETS = 5, [-1.0, 1.0], ["super", "random_k", "bottom_k"]


@pytest.fixture(scope="module")
def perturbed(kinds_project):
    out = kinds_project.run(STAGE)
    baseline = pd.read_parquet(kinds_project.root / BASELINE / "sequences.parquet")
    return out, pd.read_parquet(out / "conditions.parquet"), baseline


def super_size(kinds_project) -> int:
    topk = pd.read_parquet(kinds_project.root / "results/phase2/sc/seed1/topk.parquet")
    return len(super_set(topk, K, metric="grad_x_weight", mode="per_layer"))  # k per matrix


def test_one_row_per_condition_and_baseline_window(kinds_project, perturbed):
    _, conditions, baseline = perturbed
    n_super = super_size(kinds_project)
    assert n_super % K == 0 and n_super > K  # k weights in each of several matrices
    assert len(baseline) > 0 and len(conditions) == len(LEVELS) * len(TARGETS) * len(baseline)
    for (level, target), rows in conditions.groupby(["level", "target"]):
        assert rows["window_id"].tolist() == baseline["window_id"].tolist()  # the baseline's windows, in order
        assert (rows["n_tokens"].to_numpy() == baseline["n_tokens"].to_numpy()).all()
    assert sorted(set(zip(conditions["level"], conditions["target"]))) == sorted(
        (lv, t) for lv in LEVELS for t in TARGETS)
    assert (conditions["n_touched"] == n_super).all() and not conditions["diverged"].any()
    assert (conditions["n_unchanged"] == n_super).all()  # |w| kept by ×1 and ×(-1)


def test_identity_level_reproduces_the_baseline_exactly_after_the_flip_is_restored(perturbed):
    """Level 1 runs after level -1 on the same model: equal NLLs prove each flip was restored bit for bit."""
    _, conditions, baseline = perturbed
    for target in TARGETS:
        rows = conditions[(conditions["level"] == 1.0) & (conditions["target"] == target)]
        assert np.array_equal(rows["nll_sum"].to_numpy(), baseline["nll_sum"].to_numpy()), target


def test_sign_flip_of_the_super_set_is_the_damage_redone_here(kinds_project, perturbed, ref_tiny):
    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import evaluate_windows, prepare_windows
    from esa.engine.models.loading import load_model

    out, conditions, baseline = perturbed
    topk = pd.read_parquet(kinds_project.root / "results/phase2/sc/seed1/topk.parquet")
    chosen = super_set(topk, K, metric="grad_x_weight", mode="per_layer")
    model, tok = load_model(str(ref_tiny))
    with torch.no_grad():
        for name, rows in chosen.groupby("tensor"):
            flat = model.get_parameter(name).view(-1)
            index = torch.tensor(rows["flat_index"].to_numpy(dtype=np.int64))
            flat[index] = -flat[index]
    prepared = prepare_windows(tok, load_split(kinds_project.root / "data/stdlib-tiny", "evaluation"), context=128,
                               stride=64, max_windows=64, seed=1337, folds=2, fold=0)
    _, frame = evaluate_windows(model, prepared, batch_size=16, device=torch.device("cpu"), progress=False)
    flipped = conditions[(conditions["level"] == -1.0) & (conditions["target"] == "super")]
    assert frame["window_id"].tolist() == flipped["window_id"].tolist()
    assert np.allclose(flipped["nll_sum"], frame["nll_sum"], rtol=1e-6, atol=1e-6)
    assert not np.allclose(flipped["nll_sum"], baseline["nll_sum"], rtol=1e-6, atol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    row = next(c for c in summary["conditions"] if (c["level"], c["target"]) == (-1.0, "super"))
    expected = np.exp(flipped["nll_sum"].sum() / flipped["n_tokens"].sum())
    assert row["ppl"] == pytest.approx(expected) and row["delta_ppl"] == pytest.approx(expected - summary["baseline_ppl"])


def test_every_control_is_the_size_of_the_super_set(kinds_project, perturbed):
    out = perturbed[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["selection_sizes"] == {t: super_size(kinds_project) for t in TARGETS}
    assert manifest["status"] == "ok"


def test_summary_names_the_super_weights_with_their_original_values(kinds_project, perturbed, ref_tiny):
    from esa.engine.models.loading import load_model

    summary = json.loads((perturbed[0] / "summary.json").read_text())
    topk = pd.read_parquet(kinds_project.root / "results/phase2/sc/seed1/topk.parquet")
    chosen = super_set(topk, K, metric="grad_x_weight", mode="per_layer").set_index(["tensor", "flat_index"])
    recorded = summary["super_weights"]
    assert summary["n_super"] == len(chosen) and len(recorded) == min(32, len(chosen))
    assert [w["score"] for w in recorded] == sorted(chosen["score"], reverse=True)[:len(recorded)]
    model, _ = load_model(str(ref_tiny))
    for w in recorded:
        row = chosen.loc[(w["tensor"], w["flat_index"])]
        assert (w["layer"], w["row"], w["col"], w["score"]) == (row["layer"], row["row"], row["col"], row["score"])
        assert w["value"] == model.get_parameter(w["tensor"]).reshape(-1)[w["flat_index"]].item()


def test_compile_pairs_each_seed_with_its_scoring_seed_and_the_shared_baseline(kinds_project):
    stages = kinds_project.stages
    perturb = sorted(n for n in stages if n.startswith("perturb.phase3/"))
    assert perturb == ["perturb.phase3/flip/seed1", "perturb.phase3/flip/seed2"]
    baselines = [n for n in stages if n.startswith("baseline.ref-tiny/")]
    assert baselines == ["baseline.ref-tiny/stdlib-tiny/smoke-float32/fold0of2-seed1337"]
    assert stages[baselines[0]]["outs"][0] == f"{BASELINE}/sequences.parquet"
    for seed in (1, 2):
        stage, scores = stages[f"perturb.phase3/flip/seed{seed}"], f"results/phase2/sc/seed{seed}"
        assert f"--scores {scores} " in stage["cmd"] and f"--baseline {BASELINE} " in stage["cmd"]
        assert {f"{scores}/topk.parquet", f"{scores}/bottomk.parquet", f"{BASELINE}/sequences.parquet"} \
            <= set(stage["deps"])
    params = kinds_project.params["phase3"]["flip"]
    assert params["levels"] == LEVELS and params["score_seeds"] == [1, 2] and params["scores"]["k"] == K
    assert (params["folds"], params["fold"], params["eval_seed"]) == (2, 0, 1337)
    base_key = stages[baselines[0]]["params"][0]
    base = kinds_project.params
    for part in base_key.split("."):
        base = base[part]
    # The perturbation and its baseline evaluate the same windows: same protocol values and fold.
    assert {k: base[k] for k in ("context", "stride", "max_windows", "folds", "fold")} == \
        {k: params[k] for k in ("context", "stride", "max_windows", "folds", "fold")}
    grade_deps = set(stages["grade.phase3"]["deps"])
    assert {f"{BASELINE}/sequences.parquet", "results/phase3/flip/seed1/conditions.parquet",
            "results/phase3/flip/seed1/summary.json"} <= grade_deps  # summary.json names the super weights


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["perturb"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
