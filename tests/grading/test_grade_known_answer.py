"""Known-answer criteria (ppl_factor, negligible_effect) graded on constructed per-window data through
analyze_perturb_runs and the registered evaluators: each passes, fails and is inconclusive on data built for the
case; the PPL-factor CI is checked against a case computed by hand."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from test_grade_phase3 import Project, one_run

from esa.grading import known_answer_criteria  # importing it registers the evaluators
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.grading.perturb_analysis import analyze_perturb_runs
from esa.report import tables_phase3_known as known

RUN = "{id: a, kind: perturb, perturbation: zero, controls: [random_k]}"
SUPER = {"tensor": "model.layers.2.mlp.down_proj.weight", "layer": 2, "component": "mlp_down", "expert": None,
         "row": 7, "col": 3, "flat_index": 7 * 64 + 3, "score": 812.5, "value": -1.53125}


def pair(sup: float, rnd: float) -> dict:
    """Mean ΔNLL per token of the super set and of random_k: PPL(target)/PPL(baseline) ≈ exp(ΔNLL)."""
    return {(1.0, "super"): sup, (1.0, "random_k"): rnd}


def record_super(project, weights: list[dict], n_super: int | None = None) -> None:
    """summary.json as the perturb stage writes it: the super weights it perturbed."""
    for seed in project.spec.run("a").seeds:
        path = project.root / f"results/{project.spec.name}/a/seed{seed}/summary.json"
        path.write_text(json.dumps({"seed": seed, "n_super": n_super or len(weights), "super_weights": weights}))


def regrade(project, criterion_id: str = "c"):
    project.analysis = analyze_perturb_runs(project.spec, project.root, n_boot=1000)
    criterion = next(c for c in project.spec.criteria if c.id == criterion_id)
    return EVALUATORS[criterion.kind](criterion, GradeContext(project.spec, project.root, project.analysis))


# --- ppl_factor ----------------------------------------------------------------------------------------------


def test_ppl_factor_passes_fails_and_is_inconclusive_by_the_envelope(tmp_path):
    grade, project = one_run(tmp_path / "pass", "kind: ppl_factor, threshold: 2", pair(1.0, 0.0), run=RUN)
    assert grade.status == "pass" and grade.ci[0] >= 2, grade.reason  # PPL ×e
    rows = [r for r in project.analysis["runs"]["a"]["rows"] if r["target"] == "super"]
    assert grade.value == statistics.median(r["ppl_factor"] for r in rows) == pytest.approx(math.e, rel=0.02)
    assert grade.ci == [min(r["factor_ci_low"] for r in rows), max(r["factor_ci_high"] for r in rows)]
    assert "30 documents, 120 windows" in grade.reason and "seed 3: PPL" in grade.reason
    grade, _ = one_run(tmp_path / "fail", "kind: ppl_factor, threshold: 2", pair(0.3, 0.0), run=RUN)
    assert grade.status == "fail" and grade.ci[1] < 2, grade.reason  # PPL ×1.35
    # PPL doubled on average, with per-document spread: the CI straddles 2.
    grade, _ = one_run(tmp_path / "mid", "kind: ppl_factor, threshold: 2", pair(math.log(2), 0.0), run=RUN,
                       doc_sd=0.05)
    assert grade.status == "inconclusive" and grade.ci[0] < 2 < grade.ci[1], grade.reason


def test_ppl_factor_reads_its_target_and_counts_divergence_as_the_largest_factor(tmp_path):
    grade, _ = one_run(tmp_path / "control", "kind: ppl_factor, target: random_k, threshold: 2", pair(1.0, 0.0),
                       run=RUN)
    assert grade.status == "fail" and grade.value == pytest.approx(1.0, abs=0.01), grade.reason
    grade, _ = one_run(tmp_path / "diverged", "kind: ppl_factor, threshold: 2", pair(math.inf, 0.0), run=RUN,
                       doc_sd=0, win_sd=0)
    assert grade.status == "pass" and grade.value == math.inf and "3 of 3 seeds diverged" in grade.reason


def test_ppl_factor_names_the_super_weight_the_run_zeroed(tmp_path):
    grade, project = one_run(tmp_path, "kind: ppl_factor, threshold: 2", pair(1.0, 0.0), run=RUN)
    record_super(project, [SUPER])
    grade = regrade(project)
    assert grade.status == "pass"
    assert ("super set (zero): seeds 1, 2, 3: layer 2 model.layers.2.mlp.down_proj.weight [row 7, col 3] = -1.53125 "
            "(score 812.5)") in grade.reason, grade.reason
    assert any(path.endswith("/a/seed2/summary.json") for path in grade.evidence)
    frame = known.super_weights_frame(project.analysis, known.known_answer_runs(project.spec))
    assert frame.to_dict("records") == [{"run": "a", "seeds": "1, 2, 3", "layer": "2", "matrix": SUPER["tensor"],
                                         "row": "7", "col": "3", "original value": "-1.53125", "score": "812.5"}]


def test_a_larger_super_set_is_named_in_part_and_counted(tmp_path):
    grade, project = one_run(tmp_path, "kind: ppl_factor, threshold: 2", pair(1.0, 0.0), run=RUN)
    weights = [{**SUPER, "row": r, "flat_index": r * 64 + 3, "score": 900.0 - r} for r in range(5)]
    record_super(project, weights, n_super=40)
    grade = regrade(project)
    shown = known_answer_criteria.SHOWN  # the highest-scoring few, then a count
    assert f"[row {shown - 1}, col 3]" in grade.reason and f"[row {shown}, col 3]" not in grade.reason
    assert f"and {40 - shown} more" in grade.reason, grade.reason


def _two_documents(tmp_path, criterion: str):
    """Two documents of one 100-token window each: baseline mean NLL 1.0 and 2.0; zeroing the super weight adds
    1.0 and 0.2; random_k changes nothing."""
    project = Project(tmp_path, "- {id: a, kind: perturb, perturbation: zero, seeds: [1], controls: [random_k]}\n",
                      f"- {{id: c, hypothesis: H1, run: a, {criterion}}}\n")
    run = project.spec.run("a")
    base = pd.DataFrame({"window_id": ["d0:0", "d1:0"], "doc_id": ["d0", "d1"], "n_tokens": [100, 100],
                         "nll_sum": [100.0, 200.0]})
    (project.root / run.baseline_dir()).mkdir(parents=True)
    base.to_parquet(project.root / run.baseline_dir() / "sequences.parquet", index=False)
    out = project.root / f"results/{project.spec.name}/a/seed1"
    out.mkdir(parents=True)
    frames = [base.assign(nll_sum=[200.0, 220.0], target="super", level=1.0, n_touched=1),
              base.assign(target="random_k", level=1.0, n_touched=1)]
    pd.concat(frames).to_parquet(out / "conditions.parquet", index=False)
    return project


def test_ppl_factor_ci_by_hand_on_two_documents(tmp_path):
    """Resampling two documents gives three draws: {d0, d0} (p = 1/4), {d0, d1} (1/2) and {d1, d1} (1/4). Both
    PPLs are taken on the same draw, so the PPL factors are e^(2−1) = e^1.0, e^(2.1−1.5) = e^0.6 and
    e^(2.2−2) = e^0.2. The 2.5% and 97.5% quantiles of 2000 resamples fall inside the outer blocks, so the 95% CI
    is exactly [e^0.2, e^1.0] around the point e^0.6."""
    project = _two_documents(tmp_path, "kind: ppl_factor, threshold: 2")
    project.analysis = analyze_perturb_runs(project.spec, project.root, n_boot=2000)
    row = next(r for r in project.analysis["runs"]["a"]["rows"] if r["target"] == "super")
    assert row["ppl_factor"] == pytest.approx(math.exp(0.6))
    assert (row["factor_ci_low"], row["factor_ci_high"]) == (pytest.approx(math.exp(0.2)), pytest.approx(math.e))
    grade = EVALUATORS["ppl_factor"](project.spec.criteria[0], GradeContext(project.spec, project.root,
                                                                            project.analysis))
    assert grade.status == "inconclusive" and grade.value == pytest.approx(1.8221, abs=1e-4)
    assert "2 documents, 2 windows" in grade.reason


# --- negligible_effect ---------------------------------------------------------------------------------------


def test_negligible_effect_passes_fails_and_is_inconclusive(tmp_path):
    crit = "kind: negligible_effect, target: random_k, threshold: 0.01"
    grade, project = one_run(tmp_path / "pass", crit, pair(1.0, 0.0), run=RUN, doc_sd=0.001, win_sd=0.0005)
    assert grade.status == "pass" and 0 <= grade.ci[0] <= grade.ci[1] < 0.01, grade.reason
    rows = [r for r in project.analysis["runs"]["a"]["rows"] if r["target"] == "random_k"]
    assert grade.value == pytest.approx(statistics.median(abs(r["ppl_factor"] - 1) for r in rows))
    assert "30 documents, 120 windows" in grade.reason and "random_k (zero)" in grade.reason
    # PPL 5% higher, and 5% lower: either way outside ±1% in every seed.
    for name, effect in (("up", 0.05), ("down", -0.05)):
        grade, _ = one_run(tmp_path / name, crit, pair(1.0, effect), run=RUN)
        assert grade.status == "fail" and grade.ci[0] >= 0.01, grade.reason
    # A change of about 1% with per-document spread: the CI of |change| straddles 0.01.
    grade, _ = one_run(tmp_path / "mid", crit, pair(1.0, math.log(1.01)), run=RUN, doc_sd=0.01)
    assert grade.status == "inconclusive" and grade.ci[0] < 0.01 < grade.ci[1], grade.reason


def test_negligible_effect_folds_a_ci_around_zero_and_fails_a_diverged_model(tmp_path):
    # No change at all: every seed's CI is the point 0 and folds to [0, 0].
    project = _two_documents(tmp_path / "zero", "kind: negligible_effect, target: random_k, threshold: 0.01")
    grade = regrade(project)
    assert grade.status == "pass" and grade.value == 0 and grade.ci == [0.0, 0.0], grade.reason
    grade, _ = one_run(tmp_path / "diverged", "kind: negligible_effect, target: random_k", pair(1.0, math.inf),
                       run=RUN, doc_sd=0, win_sd=0)
    assert grade.status == "fail" and grade.value == math.inf and "diverged" in grade.reason


def test_known_answer_criteria_are_inconclusive_without_the_condition_or_the_evidence(tmp_path):
    grade, _ = one_run(tmp_path / "level", "kind: ppl_factor, level: 2.0", pair(1.0, 0.0), run=RUN)
    assert grade.status == "inconclusive" and "level 2 is not one of the run's levels [1.0]" in grade.reason
    grade, _ = one_run(tmp_path / "target", "kind: ppl_factor, target: bottom_k", pair(1.0, 0.0), run=RUN)
    assert grade.status == "inconclusive" and "no bottom_k condition at level 1" in grade.reason
    project = Project(tmp_path / "missing", f"- {RUN}\n",
                      "- {id: c, hypothesis: H1, run: a, kind: negligible_effect}\n")
    grade = regrade(project)
    assert grade.status == "inconclusive" and "missing evidence" in grade.reason


def test_the_factor_is_paired_with_the_baseline_on_each_resample(tmp_path):
    """Documents differ a lot in NLL, the perturbation shifts each by the same amount: the PPL factor is the same
    on every resample, so its CI is a point, while ΔPPL varies with the draw."""
    grade, project = one_run(tmp_path, "kind: ppl_factor, threshold: 2", pair(1.0, 0.0), run=RUN, doc_sd=0,
                             win_sd=0)
    row = next(r for r in project.analysis["runs"]["a"]["rows"] if r["target"] == "super")
    assert row["factor_ci_low"] == pytest.approx(math.e) and row["factor_ci_high"] == pytest.approx(math.e)
    assert row["delta_ci_high"] - row["delta_ci_low"] > 0.05 * row["delta_ppl"]
    assert grade.status == "pass" and np.isclose(grade.value, math.e)
