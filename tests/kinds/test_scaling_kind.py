"""Run kind `scaling`: its compile rule (no stage; the grade stage reads every ladder model's results), the grade
stage's fits on a ladder of local checkpoints, each quantity recomputed here from the score and perturb runs' own
files, and its graders' outcomes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes
from safetensors.numpy import load_file

LADDER = ["m1", "m2", "m3", "m4"]


@pytest.fixture(scope="module")
def graded(kinds_project):
    root = kinds_project.run("grade.phase4")
    analysis = json.loads((root / "results/phase4/analysis.json").read_text())
    return root, analysis["runs"]["lad"], pd.read_parquet(root / "results/phase4/scaling.parquet")


def test_compile_rule_adds_no_stage_and_makes_the_ladders_results_grade_deps(kinds_project):
    stages = kinds_project.stages
    assert not [name for name in stages if "/lad" in name]
    deps = stages["grade.phase4"]["deps"]
    for name in LADDER:
        assert f"results/phase4/sc-{name}/seed2/scores" in deps
        assert f"results/phase4/flip-{name}/seed1/summary.json" in deps
    assert "results/phase4/sc-moe/seed1/scores" not in deps  # not in the ladder (the architecture run reads stats)


def test_n_is_the_non_embedding_parameter_count_of_each_checkpoint(graded, kinds_project):
    from transformers import AutoModelForCausalLM

    _, summary, _ = graded
    for name in LADDER:
        model = AutoModelForCausalLM.from_pretrained(kinds_project.root / "ladder" / name)
        by_hand = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
        assert summary["n_params"][f"./ladder/{name}"] == by_hand


def test_critical_fraction_and_top_mass_recomputed_from_the_saved_scores(graded):
    root, summary, table = graded
    for name in LADDER:
        for seed in (1, 2):
            tensors = load_file(str(root / f"results/phase4/sc-{name}/seed{seed}/scores/grad_x_weight.safetensors"))
            scores = np.sort(np.concatenate([np.abs(t.reshape(-1)).astype(float) for t in tensors.values()]))[::-1]
            rows = table[(table["model"] == f"./ladder/{name}") & (table["seed"] == seed)].set_index("quantity")
            assert rows.loc["critical_fraction", "value"] == pytest.approx((scores > 3 * np.median(scores)).mean())
            top = int(np.ceil(0.01 * len(scores)))
            assert rows.loc["top_mass_1pct", "value"] == pytest.approx(scores[:top].sum() / scores.sum())
    means = {row["model"]: row["mean"] for row in summary["quantities"]["critical_fraction"]["models"]}
    first = table[(table["model"] == "./ladder/m1") & (table["quantity"] == "critical_fraction")]["value"]
    assert means["./ladder/m1"] == pytest.approx(first.mean())


def test_delta_ppl_ratio_and_stability_come_from_the_perturb_and_score_files(graded):
    root, summary, table = graded
    for name in LADDER:
        seed_summary = json.loads((root / f"results/phase4/flip-{name}/seed2/summary.json").read_text())
        conditions = pd.DataFrame(seed_summary["conditions"]).set_index("target")
        row = table[(table["model"] == f"./ladder/{name}") & (table["quantity"] == "delta_ppl_ratio")
                    & (table["seed"] == 2)]
        by_hand = conditions.loc["super", "delta_ppl"] / conditions.loc["random_k", "delta_ppl"]
        assert row["value"].item() == pytest.approx(by_hand)
        tops = [pd.read_parquet(root / f"results/phase4/sc-{name}/seed{s}/topk.parquet") for s in (1, 2)]
        sets = [set(zip(t["tensor"], t["flat_index"])) for t in
                (f[(f["metric"] == "grad_x_weight") & (f["mode"] == "per_layer") & (f["rank"] < 4)] for f in tops)]
        pair = table[(table["model"] == f"./ladder/{name}") & (table["quantity"] == "stability_jaccard")]
        assert pair["value"].item() == pytest.approx(len(sets[0] & sets[1]) / len(sets[0] | sets[1]))


def test_every_quantity_is_fitted_or_says_why_not(graded):
    _, summary, _ = graded
    assert summary["models"] == [f"./ladder/{name}" for name in LADDER]
    chance = [summary["stability_chance"][f"./ladder/{name}"] for name in LADDER]
    assert all(0 < c < 1 for c in chance) and chance == sorted(chance, reverse=True)  # wider matrices: less chance
    for quantity, fit in summary["quantities"].items():
        assert ("power_law" in fit) != ("error" in fit), quantity
        if "power_law" in fit:
            assert fit["n_models"] == 4 and fit["min_seeds"] == 2


def test_grades_name_the_quantity(graded):
    root, _, _ = graded
    grades = json.loads((root / "results/phase4/grades.json").read_text())["criteria"]
    assert grades["fit"]["status"] in ("pass", "fail", "inconclusive")
    assert grades["fit"]["reason"].startswith("critical_fraction: ")
    assert (grades["alpha"]["comparator"], grades["alpha"]["threshold"]) == ("in", "[-1, 0]")
    assert grades["loo"]["reason"].startswith("hill_alpha: ") and grades["loo"]["comparator"] == "<"


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["scaling"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
