"""Scaling criteria pass, fail and are inconclusive on ladders built for each case, graded from the summary
esa.analysis.scaling returns (as a scaling run's analysis will hold it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scaling_ladders import ladder

from esa.analysis.scaling import analyze_scaling
from esa.grading import scaling_criteria  # noqa: F401  (registers the scaling evaluators)
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.spec.scaling_criteria import Exponent, PowerLawFit, PredictionError

DRAWS = 300


def summary_of(observations) -> dict:
    return analyze_scaling(observations, draws=DRAWS)


CLEAN = ladder(alpha=-0.3, noise=0.05, seeds=5)
ZIGZAG = ladder(alpha=-0.3, noise=0.02, seeds=5, factors=[1.8, 0.5] * 4)  # no law: means alternate about it
FLAT = ladder(alpha=0.0, noise=0.02, seeds=5)
FLAT_NOISY = ladder(alpha=0.0, noise=1.0, seeds=3, rng_seed=4)
OUTLIER = ladder(alpha=-0.3, noise=0.03, seeds=4, factors=[1, 1, 1, 3, 1, 1, 1, 1])


def grade(kind: str, summary: dict, **fields):
    """Grade through the registered evaluator, with ``summary`` as the ladder run's fit of critical_fraction."""
    criterion = {"power_law_fit": PowerLawFit, "prediction_error": PredictionError, "exponent": Exponent}[kind](
        id="c", hypothesis="H1", kind=kind, run="ladder", quantity="critical_fraction", **fields)
    run = {"quantities": {"critical_fraction": summary}, "evidence": ["results/x/summary.json"]}
    return EVALUATORS[kind](criterion, GradeContext(None, Path("."), {"runs": {"ladder": run}}))


def test_power_law_fit_passes_on_a_clean_law():
    g = grade("power_law_fit", summary_of(CLEAN), comparator=">", threshold=0.8)
    assert g.status == "pass" and g.ci[0] > 0.8
    assert "power law α -0.29" in g.reason and "R² 0.999" in g.reason and "8 models" in g.reason and "5 seeds each" in g.reason


def test_power_law_fit_fails_when_the_means_follow_no_law():
    g = grade("power_law_fit", summary_of(ZIGZAG), comparator=">", threshold=0.8)
    assert g.status == "fail" and g.ci[1] < 0.8, g.reason


def test_power_law_fit_is_inconclusive_when_the_ci_straddles_or_is_missing():
    summary = summary_of(CLEAN)
    low, high = summary["power_law"]["r2_ci"]
    assert grade("power_law_fit", summary, threshold=(low + high) / 2).status == "inconclusive"
    single = grade("power_law_fit", summary_of(ladder(seeds=1)), threshold=0.8)
    assert single.status == "inconclusive" and "has no CI" in single.reason and "single seed" in single.reason


def test_prediction_error_passes_when_every_model_is_predicted_well():
    g = grade("prediction_error", summary_of(CLEAN), aggregate="max", comparator="<", threshold=0.2)
    assert g.status == "pass" and g.ci[1] < 0.2 and "leave-one-out" in g.reason


def test_prediction_error_fails_on_a_planted_outlier():
    g = grade("prediction_error", summary_of(OUTLIER), aggregate="max", threshold=0.2)
    assert g.status == "fail" and g.ci[0] > 0.2 and "largest: m3" in g.reason


def test_prediction_error_is_inconclusive_when_the_ci_straddles():
    summary = summary_of(OUTLIER)
    median = summary["prediction_error"]["median"]
    g = grade("prediction_error", summary, aggregate="median", threshold=float(np.mean(median["ci"])))
    assert g.status == "inconclusive" and g.value == pytest.approx(median["value"])
    assert grade("prediction_error", summary_of(ladder(seeds=1)), threshold=0.2).status == "inconclusive"


@pytest.mark.parametrize("bounds, status", [((-0.4, -0.2), "pass"), ((0.0, 1.0), "fail"), ((-2.0, -0.5), "fail"),
                                            ((-0.3, 0.0), "inconclusive")])
def test_exponent_in_a_range(bounds, status):
    g = grade("exponent", summary_of(CLEAN), range=bounds)
    assert g.status == status, g.reason
    assert g.value == pytest.approx(-0.3, abs=0.02) and len(g.ci) == 2


@pytest.mark.parametrize("observations, status", [(CLEAN, "pass"), (FLAT, "fail"), (FLAT_NOISY, "inconclusive")])
def test_exponent_excludes_zero(observations, status):
    g = grade("exponent", summary_of(observations), excludes_zero=True, zero_margin=0.05)
    assert g.status == status, g.reason


def test_exponent_with_a_single_seed_uses_the_ols_ci():
    g = grade("exponent", summary_of(ladder(seeds=1, noise=0.02)), range=(-0.4, -0.2))
    assert g.status == "pass" and "(OLS)" in g.reason


def test_a_missing_analysis_is_inconclusive():
    criterion = PowerLawFit(id="c", hypothesis="H1", kind="power_law_fit", run="ladder", quantity="hill_alpha")

    def graded(analysis):
        return EVALUATORS["power_law_fit"](criterion, GradeContext(None, Path("."), analysis))

    g = graded({})
    assert g.status == "inconclusive" and "no scaling analysis of run ladder" in g.reason
    g = graded({"runs": {"ladder": {"error": "different tokenizers"}}})
    assert g.status == "inconclusive" and g.reason == "different tokenizers"
    g = graded({"runs": {"ladder": {"missing": [f"f{i}" for i in range(5)]}}})
    assert g.status == "inconclusive" and g.reason == "missing evidence: f0, f1, f2 (and 2 more)"
    g = graded({"runs": {"ladder": {"quantities": {"hill_alpha": {"error": "a scaling fit needs at least 4 models"}}}}})
    assert g.status == "inconclusive" and g.reason == "hill_alpha: a scaling fit needs at least 4 models"
    g = graded({"runs": {"ladder": {"quantities": {}}}})
    assert g.status == "inconclusive" and "has no fit of hill_alpha" in g.reason


def test_the_reason_names_the_quantity():
    assert grade("power_law_fit", summary_of(CLEAN), threshold=0.8).reason.startswith("critical_fraction: ")


def test_exponent_takes_one_form():
    with pytest.raises(ValueError, match="either `range: \\[low, high\\]` or `excludes_zero: true`"):
        Exponent(id="c", hypothesis="H1", kind="exponent", run="ladder", quantity="hill_alpha")
    with pytest.raises(ValueError, match="low < high"):
        Exponent(id="c", hypothesis="H1", kind="exponent", run="ladder", quantity="hill_alpha", range=(1, 0))
