"""Phase-3 evaluators: ratio, hierarchy, significance, monotonic dose-response, minimum effect, repeatability."""

from __future__ import annotations

import math
import statistics

from esa.report.grading import Grade, GradeContext, compare, evaluator
from esa.spec.criteria import Hierarchy, MinEffect, Monotonic, Ratio, Repeatability, Significance


def _result(ctx: GradeContext, run_id: str) -> tuple[dict | None, list[str], str | None]:
    run = ctx.spec.run(run_id)
    evidence = [f"results/{ctx.spec.name}/{run_id}/seed{s}/conditions.parquet" for s in run.seeds]
    evidence.append(f"{run.baseline_dir()}/sequences.parquet")
    result = ctx.analysis.get("runs", {}).get(run_id)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return None, evidence, f"missing evidence: {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
    return result, evidence, None


def _level(criterion, result: dict) -> float | None:
    level = criterion.level if criterion.level is not None else result["levels"][0]
    return level if level in result["levels"] else None


def _rows(result: dict, level: float, target: str) -> list[dict]:
    return [r for r in result["rows"] if r["level"] == level and r["target"] == target]


def _diverged(rows: list[dict]) -> str | None:
    bad = [r for r in rows if r["status"] != "ok"]
    return f"{len(bad)} of {len(rows)} evaluations diverged (non-finite NLL)" if bad else None


@evaluator("ratio")
def grade_ratio(criterion: Ratio, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    level = _level(criterion, result)
    tests = [t for t in result["tests"] if t["level"] == level and t["a"] == "super" and t["b"] == criterion.control]
    if not tests:
        return Grade(None, "inconclusive", f"no super vs {criterion.control} comparison at level {level}", evidence)
    ratios = [t["ratio"] for t in tests]
    bad = [r for r in ratios if r["status"] in ("diverged", "undefined")]
    if bad:
        return Grade(None, "inconclusive", f"{len(bad)} of {len(ratios)} seeds: {bad[0]['status']} "
                     f"({bad[0]['reason']})", evidence)
    value = statistics.median(r["ratio"] for r in ratios)
    unstable = sum(r["status"] == "unstable" for r in ratios)
    grade = compare(value, criterion, evidence, f"median over {len(ratios)} seeds; ΔPPL super "
                    f"{statistics.mean(r['delta_super'] for r in ratios):.3g} vs {criterion.control} "
                    f"{statistics.mean(r['delta_control'] for r in ratios):.3g}"
                    + (f"; {unstable} seeds with an unstable denominator" if unstable else ""))
    grade.ci = [min(r["ci_low"] for r in ratios), max(r["ci_high"] for r in ratios)]
    return grade


@evaluator("hierarchy")
def grade_hierarchy(criterion: Hierarchy, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    level = _level(criterion, result)
    means = {}
    for target in ("super", "random_k", "bottom_k"):
        rows = _rows(result, level, target)
        if rows:
            if _diverged(rows):
                return Grade(None, "inconclusive", f"{target}: {_diverged(rows)}", evidence)
            means[target] = statistics.mean(r["delta_ppl"] for r in rows)
    order = [t for t in ("super", "random_k", "bottom_k") if t in means]
    if len(order) < 2:
        return Grade(None, "inconclusive", "needs the super set and at least one control", evidence)
    holds = all(means[a] > means[b] for a, b in zip(order, order[1:]))
    text = " > ".join(f"{t} {means[t]:.3g}" for t in order)
    return compare(1.0 if holds else 0.0, criterion, evidence, f"mean ΔPPL: {text}")


@evaluator("significance")
def grade_significance(criterion: Significance, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    level = _level(criterion, result)
    tests = [t for t in result["tests"] if t["level"] == level and t["a"] == "super" and t["b"] == criterion.control]
    if not tests or any(t["test"]["status"] != "ok" or t["wilcoxon_p_holm"] is None for t in tests):
        why = next((t["test"]["reason"] for t in tests if t["test"]["status"] != "ok"), "no test")
        return Grade(None, "inconclusive", why, evidence)
    worst = max(tests, key=lambda t: t["wilcoxon_p_holm"])
    grade = compare(worst["wilcoxon_p_holm"], criterion, evidence,
                    f"largest Holm-corrected Wilcoxon p over {len(tests)} seeds; Cohen's d_z "
                    f"{worst['test']['cohen_dz']:.3g}, n = {worst['test']['n']} windows, power "
                    f"{worst['power'].get('power', math.nan):.2f}")
    grade.p = worst["wilcoxon_p_holm"]
    return grade


@evaluator("monotonic")
def grade_monotonic(criterion: Monotonic, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    dose = result.get("dose", {}).get(criterion.target)
    if dose is None:
        return Grade(None, "inconclusive", "the run has a single level: no dose-response", evidence)
    if dose["status"] != "ok":
        return Grade(None, "inconclusive", dose["reason"], evidence)
    grade = compare(dose["rho"], criterion, evidence, f"{len(dose['levels'])} levels; "
                    + ("monotonic" if dose["monotonic"] else f"{dose['n_violations']} drops between levels"))
    grade.p = dose["p"]
    return grade


@evaluator("min_effect")
def grade_min_effect(criterion: MinEffect, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    rows = _rows(result, _level(criterion, result), criterion.target)
    if not rows:
        return Grade(None, "inconclusive", f"no {criterion.target} condition", evidence)
    if _diverged(rows):  # a diverged model is the largest possible effect
        return Grade(math.inf, "pass" if criterion.comparator in (">", ">=") else "fail", _diverged(rows), evidence)
    return compare(statistics.mean(r["delta_ppl"] for r in rows), criterion, evidence,
                   f"mean over {len(rows)} seeds (baseline PPL {result['baseline_ppl']:.4g})")


@evaluator("repeatability")
def grade_repeatability(criterion: Repeatability, ctx: GradeContext) -> Grade:
    first, ev_a, problem_a = _result(ctx, criterion.run)
    second, ev_b, problem_b = _result(ctx, criterion.repeat)
    if problem_a or problem_b:
        return Grade(None, "inconclusive", problem_a or problem_b, ev_a + ev_b)
    a = {(r["seed"], r["level"], r["target"]): r["delta_ppl"] for r in first["rows"]}
    b = {(r["seed"], r["level"], r["target"]): r["delta_ppl"] for r in second["rows"]}
    shared = sorted(set(a) & set(b))
    if not shared or not all(math.isfinite(a[k]) and math.isfinite(b[k]) for k in shared):
        return Grade(None, "inconclusive", "no shared finite conditions", ev_a + ev_b)
    diff = max(abs(a[k] - b[k]) for k in shared)
    supers = [a[k] for k in shared if k[2] == "super"]
    spread = statistics.stdev(supers) if len(supers) > 1 else math.nan
    if diff == 0:
        return compare(0.0, criterion, ev_a + ev_b, f"identical over {len(shared)} conditions")
    return compare(diff / spread if spread else math.inf, criterion, ev_a + ev_b,
                   f"largest |ΔPPL difference| {diff:.3g} over {len(shared)} conditions; seed std {spread:.3g}")
