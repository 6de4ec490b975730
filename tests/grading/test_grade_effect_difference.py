"""effect_difference graded on constructed per-window data through analyze_perturb_runs and the registered evaluator:
pass, fail and inconclusive on the difference and the ratio, a case computed by hand (PPLs and an exact Wilcoxon
p), and a diverged run as the largest possible effect."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_grade_phase3 import Project

from esa.grading.comparison_criteria import grade_effect_difference  # importing it registers the evaluators
from esa.grading.criteria import EVALUATORS

RUNS = """\
- {id: act, kind: perturb, perturbation: sign_flip}
- {id: gxw, kind: perturb, perturbation: sign_flip, scores: {run: gradient, metric: act_mag, k: 20}}
"""


def compared(tmp_path, criterion: str, act: float, gxw: float, **kw):
    """Two runs on one baseline; the super set's mean ΔNLL per token in each. The super set sits at another place
    in each run's table, so the two runs draw independent per-document noise."""
    project = Project(tmp_path, RUNS, f"- {{id: c, hypothesis: H1, kind: effect_difference, {criterion}}}\n")
    project.conditions("act", {(1.0, "super"): act, (1.0, "random_k"): 0.0}, **kw)
    project.conditions("gxw", {(1.0, "random_k"): 0.0, (1.0, "super"): gxw}, **kw)
    return project.grade("c"), project


def test_difference_passes_fails_and_is_inconclusive_by_the_envelope(tmp_path):
    crit = "run: act, against: gxw, threshold: 0.5"
    grade, project = compared(tmp_path / "pass", crit, 0.1, 0.02)  # ΔPPL ≈ 2.1 vs 0.4
    assert grade.status == "pass" and grade.ci[0] > 0.5, grade.reason
    per_seed = project.analysis["effect_differences"]["c"]["per_seed"]
    diffs = [s["difference"] for s in per_seed]
    assert grade.value == pytest.approx(np.median([d["diff"] for d in diffs]))
    assert grade.ci == [min(d["ci_low"] for d in diffs), max(d["ci_high"] for d in diffs)]
    assert "30 documents, 120 windows, one draw for both runs" in grade.reason
    family = project.analysis["families"]["confirmatory"]
    assert family["members"] == ["c"] and family["n_tests"] == 3
    assert grade.p == max(family["adjusted"][s["test_key"]] for s in per_seed) < 1e-6
    assert grade.family == "confirmatory" and "3 distinct tests in family 'confirmatory'" in grade.reason
    grade, _ = compared(tmp_path / "fail", crit, 0.02, 0.1)
    assert grade.status == "fail" and grade.ci[1] < 0.5, grade.reason
    grade, _ = compared(tmp_path / "tie", "run: act, against: gxw, threshold: 0", 0.05, 0.05, doc_sd=0.01)
    assert grade.status == "inconclusive" and grade.ci[0] < 0 < grade.ci[1], grade.reason


def test_ratio_passes_fails_and_is_inconclusive(tmp_path):
    crit = "run: act, against: gxw, measure: ratio, comparator: '>=', threshold: 2"
    grade, project = compared(tmp_path / "pass", crit, 0.1, 0.02)
    ratios = [s["ratio"] for s in project.analysis["effect_differences"]["c"]["per_seed"]]
    assert grade.status == "pass" and grade.value == pytest.approx(np.median([r["ratio"] for r in ratios]))
    grade, _ = compared(tmp_path / "fail", crit, 0.02, 0.05)
    assert grade.status == "fail" and grade.ci[1] < 2, grade.reason
    # The denominator run does no harm: ΔPPL(against) ≤ 0 and the ratio has no meaning.
    grade, _ = compared(tmp_path / "undefined", crit, 0.1, 0.0, doc_sd=0.0, win_sd=0.0)
    assert grade.status == "inconclusive" and "ratio is undefined" in grade.reason, grade.reason


def test_hand_computed_difference_ratio_and_wilcoxon(tmp_path):
    """Five one-window documents of 10 tokens, baseline NLL 3 per token; act adds 0.5…0.9, gxw adds 0.1."""
    project = Project(tmp_path, RUNS.replace("perturbation: sign_flip", "perturbation: sign_flip, seeds: [1, 2]"),
                      "- {id: c, hypothesis: H1, kind: effect_difference, run: act, against: gxw, threshold: 10}\n")
    base = pd.DataFrame({"window_id": [f"d{i}:0" for i in range(5)], "doc_id": [f"d{i}" for i in range(5)],
                         "n_tokens": 10, "nll_sum": 30.0})
    where = project.root / project.spec.run("act").baseline_dir()
    where.mkdir(parents=True)
    base.to_parquet(where / "sequences.parquet", index=False)
    for run, added in (("act", [0.5, 0.6, 0.7, 0.8, 0.9]), ("gxw", [0.1] * 5)):
        for seed in (1, 2):
            out = project.root / f"results/{project.spec.name}/{run}/seed{seed}"
            out.mkdir(parents=True)
            base.assign(nll_sum=30.0 + 10 * np.array(added), target="super", level=1.0, n_touched=20).to_parquet(
                out / "conditions.parquet", index=False)
    grade = project.grade("c")
    # PPL: baseline e^3, act e^(185/50), gxw e^(155/50).
    assert grade.value == pytest.approx(math.exp(3.7) - math.exp(3.1))
    (seed1, seed2) = project.analysis["effect_differences"]["c"]["per_seed"]
    assert seed1["ratio"]["ratio"] == pytest.approx((math.exp(3.7) - math.exp(3)) / (math.exp(3.1) - math.exp(3)))
    # Every resample's PPL(act) lies between e^3.5 (all draws of d0) and e^3.9 (all of d4); PPL(gxw) is e^3.1.
    assert math.exp(3.5) - math.exp(3.1) - 1e-9 <= grade.ci[0] <= grade.ci[1] <= math.exp(3.9) - math.exp(3.1) + 1e-9
    assert grade.status == "pass", grade.reason  # the lower end of every resample, e^3.5 − e^3.1 ≈ 10.9, is > 10
    # Per-document differences 0.4…0.8 all positive: the exact one-sided signed-rank p is 1/2^5. Both seeds are the
    # same test, which enters the family once: Holm over one test leaves it as it is.
    assert seed1["test_key"] == seed2["test_key"] and seed1["test"]["wilcoxon_p"] == pytest.approx(1 / 32)
    assert project.analysis["families"]["confirmatory"]["n_tests"] == 1 and grade.p == pytest.approx(1 / 32)


def test_a_diverged_run_is_the_largest_difference(tmp_path):
    grade, _ = compared(tmp_path, "run: act, against: gxw, threshold: 0.5", math.inf, 0.02, doc_sd=0.0, win_sd=0.0)
    assert grade.status == "pass" and grade.value == math.inf and grade.ci == [math.inf, math.inf], grade.reason
    assert "no paired test" in grade.reason and grade.p is None


def test_missing_evidence_is_inconclusive(tmp_path):
    project = Project(tmp_path, RUNS, "- {id: c, hypothesis: H1, kind: effect_difference, run: act, against: gxw}\n")
    project.conditions("act", {(1.0, "super"): 0.1})
    grade = project.grade("c")
    assert grade.status == "inconclusive" and "missing evidence: the analysis of run 'gxw'" in grade.reason
    # The registry holds the evaluator wrapped: the wrapper records the criterion's Holm family on every grade.
    assert EVALUATORS["effect_difference"].__wrapped__ is grade_effect_difference and grade.family == "confirmatory"
