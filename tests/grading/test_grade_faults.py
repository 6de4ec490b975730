"""Phase-5 fault criteria graded on constructed trials and attacks: protection_gain and flips_to_collapse pass,
fail and are inconclusive on data built for each case, through analyze_fault_runs and the registered evaluators;
collapse rates, Wilson and Newcombe intervals and censored counts are checked against hand computation."""

from __future__ import annotations

import math
import textwrap

import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

import esa.grading.fault_criteria  # noqa: F401  (registers the evaluators)
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.grading.fault_analysis import analyze_fault_runs
from esa.spec import load_spec

HEAD = """\
phase: 5
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: ft, kind: faults, critical: {run: gradient, k: 5}, formats: [fp32, int8], rates: [1.0e-6], trials: 40,
     protocol: smoke, attack: {formats: [int8], budget: 10}}
"""
CRITERIA = """\
- {id: gain, hypothesis: H1, kind: protection_gain, run: ft, format: fp32, rate: 1.0e-6}
- {id: gain-none, hypothesis: H1, kind: protection_gain, run: ft, format: fp32, rate: 1.0e-6, a: none}
- {id: few, hypothesis: H1, kind: flips_to_collapse, run: ft, a: unrestricted, threshold: 3}
- {id: harder, hypothesis: H1, kind: flips_to_collapse, run: ft, a: noncritical, b: unrestricted,
   comparator: ">=", threshold: 2}
"""


def make_project(tmp_path, collapses: dict[str, int], attacks: dict[str, dict[int, int | None]],
                 drop_seed: int | None = None) -> GradeContext:
    """``collapses``: arm → collapsed trials per seed (of 40, fp32 at 1e-6); ``attacks``: arm → seed → step of
    the first collapse (None: not within the budget of 10)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "spec.yaml").write_text(HEAD + "criteria:\n" + textwrap.indent(textwrap.dedent(CRITERIA), "  "))
    spec = load_spec(tmp_path / "spec.yaml")
    for seed in spec.run("ft").seeds:
        if seed == drop_seed:
            continue
        trials = [{"seed": seed, "format": "fp32", "rate": 1e-6, "trial": t, "arm": arm, "n_flips": 3,
                   "eligible_bits": 1000, "n_exempt": 0, "n_weights": 3,
                   "ppl": math.inf if t < count else 5.0, "status": "diverged" if t < count else "ok",
                   "collapsed": t < count}
                  for arm, count in collapses.items() for t in range(40)]
        steps = []
        for arm, firsts in attacks.items():
            first = firsts[seed]
            for step in range(1, (first or 10) + 1):
                steps.append({"seed": seed, "format": "int8", "arm": arm, "step": step, "key": "w", "index": step,
                              "bit": 7, "old_value": 0.1, "new_value": -1.0, "loss": 1.0, "budget": 10,
                              "ppl": 1e4 if step == first else 6.0, "collapsed": step == first,
                              "baseline_ppl": 5.0})
        out = tmp_path / f"results/{spec.name}/ft/seed{seed}"
        out.mkdir(parents=True)
        pd.DataFrame(trials).to_parquet(out / "trials.parquet", index=False)
        pd.DataFrame(steps).to_parquet(out / "attack.parquet", index=False)
    return GradeContext(spec, tmp_path, analyze_fault_runs(spec, tmp_path))


def grade(ctx: GradeContext, criterion_id: str):
    criterion = next(c for c in ctx.spec.criteria if c.id == criterion_id)
    return EVALUATORS[criterion.kind](criterion, ctx)


ATTACKS = {"unrestricted": {1: 1, 2: 2}, "noncritical": {1: 6, 2: None}}


def test_protection_gain_passes_with_the_hand_computed_difference_and_newcombe_interval(tmp_path):
    ctx = make_project(tmp_path, {"none": 30, "critical": 5, "random": 28}, ATTACKS)
    g = grade(ctx, "gain")
    assert g.status == "pass"
    assert g.value == pytest.approx(56 / 80 - 10 / 80)
    low, high = confint_proportions_2indep(56, 80, 10, 80, method="newcomb", compare="diff")
    assert g.ci == pytest.approx([low, high])
    cell = next(c for c in ctx.analysis["runs"]["ft"]["collapse"] if c["arm"] == "critical")
    assert (cell["collapsed"], cell["trials"]) == (10, 80)
    assert [cell["ci_low"], cell["ci_high"]] == pytest.approx(list(proportion_confint(10, 80, method="wilson")))
    assert grade(ctx, "gain-none").status == "pass"


def test_protection_gain_fails_when_the_critical_arm_collapses_more(tmp_path):
    ctx = make_project(tmp_path, {"none": 10, "critical": 35, "random": 10}, ATTACKS)
    g = grade(ctx, "gain")
    assert g.status == "fail" and g.ci[1] < 0


def test_protection_gain_is_inconclusive_when_protection_changes_nothing(tmp_path):
    # No collapse in either arm: a difference of 0 with an interval on both sides of it.
    ctx = make_project(tmp_path, {"none": 0, "critical": 0, "random": 0}, ATTACKS)
    g = grade(ctx, "gain")
    assert g.status == "inconclusive" and g.value == 0 and g.ci[0] < 0 < g.ci[1]


def test_flips_to_collapse_passes_fails_and_is_inconclusive_on_the_seeds_envelope(tmp_path):
    ctx = make_project(tmp_path, {"none": 1, "critical": 1, "random": 1},
                       {"unrestricted": {1: 1, 2: 3}, "noncritical": {1: 9, 2: None}})
    few = grade(ctx, "few")
    assert few.status == "pass" and few.value == 2 and few.ci == [1, 3]
    harder = grade(ctx, "harder")  # seed 1: 9 / 1; seed 2: more than 10 / 3
    assert harder.status == "pass" and harder.ci[0] == pytest.approx(11 / 3) and math.isinf(harder.ci[1])
    assert "1 attack(s) did not collapse" in harder.reason
    slow = make_project(tmp_path / "slow", {"none": 1, "critical": 1, "random": 1},
                        {"unrestricted": {1: 5, 2: None}, "noncritical": {1: 6, 2: None}})
    assert grade(slow, "few").status == "fail"  # 5 and more than 10 flips: both above 3
    harder = grade(slow, "harder")  # 6/5, and (more than 10) / (more than 10): no point value, unbounded
    assert harder.status == "inconclusive" and harder.value == pytest.approx(6 / 5) and harder.ci[0] == 0
    never = make_project(tmp_path / "never", {"none": 1, "critical": 1, "random": 1},
                         {"unrestricted": {1: None, 2: None}, "noncritical": {1: None, 2: None}})
    assert grade(never, "harder").status == "inconclusive" and grade(never, "harder").value is None
    mixed = make_project(tmp_path / "mixed", {"none": 1, "critical": 1, "random": 1},
                         {"unrestricted": {1: 2, 2: 7}, "noncritical": {1: 3, 2: 8}})
    assert grade(mixed, "few").status == "inconclusive"  # one seed within 3 flips, one not
    assert grade(mixed, "harder").status == "fail"  # 1.5 and 1.14: both below 2


def test_missing_seeds_are_inconclusive(tmp_path):
    ctx = make_project(tmp_path, {"none": 30, "critical": 5, "random": 28}, ATTACKS, drop_seed=2)
    for criterion_id in ("gain", "few"):
        g = grade(ctx, criterion_id)
        assert g.status == "inconclusive" and "missing evidence" in g.reason
