"""Phase-1 evaluators (eval runs): seed-to-seed variation, finiteness, PPL sanity and metric bounds.

Intervals: seed CV from the chi-square distribution of the seeds' variance; PPL-type metrics from a bootstrap
over the evaluation documents of each seed (esa.analysis.eval_ci).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from esa.analysis.eval_ci import cv_ci, metric_ci
from esa.grading.evidence import RunEvidence, load_eval_evidence
from esa.grading.criteria import Grade, GradeContext, compare, compare_ci, evaluator
from esa.spec import Spec
from esa.spec.criteria import Finite, MetricBound, PplSanity, SeedCV

STATUS_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}


def _evidence(spec: Spec, criterion, root: Path) -> tuple[list[RunEvidence], list[str], str | None]:
    """The selected runs' results, the files read, and a reason to stop when some are missing."""
    runs = load_eval_evidence(spec, root, [run.id for run in spec.select_runs(criterion.runs)])
    paths = [seed.path for run in runs for seed in run.seeds]
    missing = [path for run in runs for path in run.missing]
    if not runs:
        return runs, paths, "no evaluation runs selected"
    if missing:
        return runs, paths, f"missing evidence: {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
    return runs, paths, None


def seed_intervals(root: Path, runs: list[RunEvidence], metric: str) -> list[tuple[float, float, float]]:
    """(value, low, high) per (run, seed): the seed's metric and its document-bootstrap interval."""
    out = []
    for run in runs:
        for seed in run.seeds:
            table = root / seed.path.replace("metrics.json", "sequences.parquet")
            if not table.exists():
                out.append((seed.metric(metric), math.nan, math.nan))
                continue
            lo, hi, _ = metric_ci(pd.read_parquet(table), metric, seed=seed.seed)
            out.append((seed.metric(metric), lo, hi))
    return out


@evaluator("seed_cv")
def grade_seed_cv(criterion: SeedCV, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    if any(len(run.seeds) < 2 for run in runs):
        return Grade(None, "inconclusive", "seed variation needs at least two seeds per run", paths)
    grades = []
    for run in runs:
        cv, lo, hi = cv_ci(run.values(criterion.metric))
        if not math.isfinite(cv):
            return Grade(None, "inconclusive", f"non-finite {criterion.metric} in {run.run}", paths)
        grade = compare_ci(cv, (lo, hi), criterion, paths, f"run {run.run}, {len(run.seeds)} seeds, chi-square "
                           "interval of the seeds' standard deviation")
        grades.append((STATUS_ORDER[grade.status], -(hi or 0), grade))
    # The verdict of the whole set: any run failing fails it, any undecided run leaves it undecided.
    return min(grades, key=lambda g: g[:2])[2]


@evaluator("finite")
def grade_finite(criterion: Finite, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    seeds = [seed for run in runs for seed in run.seeds]
    ok = [math.isfinite(seed.metric(criterion.metric)) and seed.metrics.get("status", "ok") == "ok" for seed in seeds]
    # A count of finished evaluations, not an estimate: it has no sampling interval.
    return compare(sum(ok) / len(ok), criterion, paths, f"{sum(ok)}/{len(ok)} evaluations finite")


@evaluator("ppl_sanity")
def grade_ppl_sanity(criterion: PplSanity, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    seeds = [seed for run in runs for seed in run.seeds]
    vocab = [seed.metric("vocab_size") for seed in seeds]
    ppl = seed_intervals(ctx.root, runs, "ppl")
    if not all(math.isfinite(v) for v in [p[0] for p in ppl] + vocab):
        return Grade(None, "inconclusive", "non-finite PPL or unknown vocabulary size", paths)
    lowest = min(p[0] for p in ppl)
    if lowest < criterion.suspicious_below:
        return Grade(lowest, "fail", f"suspicious: PPL {lowest:.4g} < {criterion.suspicious_below:g} on held-out "
                     "text signals leakage or repeated data", paths)
    worst = max(range(len(ppl)), key=lambda i: ppl[i][0] / vocab[i])
    lows = [p[1] / v for p, v in zip(ppl, vocab)]
    highs = [p[2] / v for p, v in zip(ppl, vocab)]
    return compare_ci(ppl[worst][0] / vocab[worst], (max(lows), max(highs)), criterion, paths,
                      f"worst PPL / vocabulary over {len(ppl)} evaluations; PPL range {lowest:.4g}–"
                      f"{max(p[0] for p in ppl):.4g}; CI from a bootstrap over documents")


@evaluator("metric_bound")
def grade_metric_bound(criterion: MetricBound, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    values = seed_intervals(ctx.root, runs, criterion.metric)
    if not all(math.isfinite(v[0]) for v in values):
        return Grade(None, "inconclusive", f"non-finite {criterion.metric}", paths)
    aggregate = {"max": max, "min": min, "mean": lambda xs: sum(xs) / len(xs)}[criterion.aggregate]
    value, lo, hi = (aggregate([v[i] for v in values]) for i in range(3))
    return compare_ci(value, (lo, hi), criterion, paths, f"{criterion.aggregate} over {len(values)} evaluations; "
                      "CI from a bootstrap over each seed's documents")
