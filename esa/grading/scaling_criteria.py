"""Scaling-law evaluators: R² of the power law (``power_law_fit``), its leave-one-out prediction error
(``prediction_error``) and where its exponent lies (``exponent``), graded from the summary that
esa.analysis.scaling.analyze_scaling returns (a plain dict, as analysis.json stores it).

Each verdict uses its uncertainty (``compare_ci``): the bootstrap over seeds, or for α alone its OLS CI when some
model has a single seed. ``GRADERS`` maps each kind to its evaluator (registered on import).
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.grading.run_summary import run_summary
from esa.spec.scaling_criteria import Exponent, PowerLawFit, PredictionError


def _interval(ci) -> str:
    return "no CI" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def describe_fit(summary: dict) -> str:
    """α [CI], R² [CI], the models and their seeds: what every scaling grade states."""
    power = summary["power_law"]
    seeds = summary["seeds_per_model"].values()
    spread = f"{min(seeds)}" if min(seeds) == max(seeds) else f"{min(seeds)}–{max(seeds)}"
    boot = summary.get("bootstrap")
    how = (f"CIs: {boot['method']}" if boot else summary.get("bootstrap_note", "no bootstrap over seeds"))
    return (f"power law α {power['alpha']:.4g} {_interval(power['alpha_ci'])} ({power['alpha_ci_method']}), "
            f"R² {power['r2']:.4g} {_interval(power['r2_ci'])}; {summary['n_models']} models "
            f"({', '.join(summary['seeds_per_model'])}), {spread} seeds each; {how}")


def grade_power_law_fit_summary(criterion: PowerLawFit, summary: dict, evidence: list[str]) -> Grade:
    power = summary["power_law"]
    if power["r2_ci"] is None:
        return Grade(power["r2"], "inconclusive", f"R² {power['r2']:.4g} has no CI: a bootstrap over seeds needs "
                     f"at least 2 seeds per model; {describe_fit(summary)}", evidence)
    return compare_ci(power["r2"], power["r2_ci"], criterion, evidence, describe_fit(summary))


def grade_prediction_error_summary(criterion: PredictionError, summary: dict, evidence: list[str]) -> Grade:
    entry = summary["prediction_error"][criterion.aggregate]
    worst = max(summary["models"], key=lambda row: row["loo_relative_error"])
    why = (f"{criterion.aggregate} over {summary['n_models']} models of the leave-one-out relative error "
           f"|pred − obs| / obs (largest: {worst['model']}, {worst['loo_relative_error']:.3g}); "
           f"{describe_fit(summary)}")
    if entry["ci"] is None:
        return Grade(entry["value"], "inconclusive", f"{entry['value']:.4g} has no CI: a bootstrap over seeds "
                     f"needs at least 2 seeds per model; {why}", evidence)
    return compare_ci(entry["value"], entry["ci"], criterion, evidence, why)


def _side(comparator: str, threshold: float, alpha: float, ci) -> str:
    """compare_ci's status for α against one bound."""
    return compare_ci(alpha, ci, SimpleNamespace(comparator=comparator, threshold=threshold), []).status


def _inside(alpha: float, ci, low: float, high: float) -> str:
    """pass: the CI lies inside [low, high]; fail: entirely outside it; inconclusive: it straddles an end."""
    sides = {_side(">=", low, alpha, ci), _side("<=", high, alpha, ci)}
    return "fail" if "fail" in sides else "pass" if sides == {"pass"} else "inconclusive"


def grade_exponent_summary(criterion: Exponent, summary: dict, evidence: list[str]) -> Grade:
    power = summary["power_law"]
    alpha, ci = power["alpha"], power["alpha_ci"]
    shown = f"α's CI {_interval(ci)}"
    if ci is None or not math.isfinite(alpha):
        return Grade(alpha, "inconclusive", f"α has no CI; {describe_fit(summary)}", evidence, ci)
    if criterion.range is not None:
        low, high = criterion.range
        status = _inside(alpha, ci, low, high)
        verdict = {"pass": "lies inside", "fail": "lies outside", "inconclusive": "straddles an end of"}[status]
        why = f"{shown} {verdict} [{low:g}, {high:g}]"
    else:
        margin = criterion.zero_margin
        if "pass" in (_side(">", 0.0, alpha, ci), _side("<", 0.0, alpha, ci)):
            status, why = "pass", f"{shown} excludes 0"
        elif _inside(alpha, ci, -margin, margin) == "pass":
            status, why = "fail", f"{shown} lies inside [−{margin:g}, {margin:g}]: α is negligibly small"
        else:
            status, why = "inconclusive", f"{shown} contains 0 but reaches beyond ±{margin:g}"
    return Grade(alpha, status, f"{why}; {describe_fit(summary)}", evidence, [float(c) for c in ci])


def _summary(criterion, ctx: GradeContext) -> tuple[dict | None, list[str], str | None]:
    """The fit of the criterion's quantity in the scaling run's analysis, its evidence, or why there is none."""
    run, evidence, problem = run_summary(ctx, criterion.run, "scaling")
    if problem:
        return None, evidence, problem
    summary = run.get("quantities", {}).get(criterion.quantity)
    if summary is None:
        return None, evidence, f"run {criterion.run} has no fit of {criterion.quantity}"
    if summary.get("error"):
        return None, evidence, f"{criterion.quantity}: {summary['error']}"
    return summary, evidence, None


def _from_context(grade_summary):
    def grade(criterion, ctx: GradeContext) -> Grade:
        summary, evidence, problem = _summary(criterion, ctx)
        if problem:
            return Grade(None, "inconclusive", problem, evidence)
        grade = grade_summary(criterion, summary, evidence)
        return replace(grade, reason=f"{criterion.quantity}: {grade.reason}")
    grade.__name__ = grade_summary.__name__.removesuffix("_summary")
    return grade


grade_power_law_fit = _from_context(grade_power_law_fit_summary)
grade_prediction_error = _from_context(grade_prediction_error_summary)
grade_exponent = _from_context(grade_exponent_summary)

GRADERS = {"power_law_fit": grade_power_law_fit, "prediction_error": grade_prediction_error,
           "exponent": grade_exponent}
for _kind, _grade in GRADERS.items():
    evaluator(_kind)(_grade)
