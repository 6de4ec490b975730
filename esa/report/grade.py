"""Grading: one evaluator per criterion kind turns a phase's artifacts into pass / fail / inconclusive.

Grades are computed here once (the `grade.<phase>` stage) and only displayed by reports.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

from esa.report import grade_perturb, grade_score  # noqa: F401  (register the Phase-2 and -3 evaluators)
from esa.report.analysis_phase2 import analyze_phase2
from esa.report.analysis_phase3 import analyze_phase3
from esa.report.evidence import RunEvidence, coefficient_of_variation, load_eval_evidence, summarize
from esa.report.grading import EVALUATORS, Grade, GradeContext, compare, evaluator
from esa.notebook.lock import lock_status
from esa.notebook.manifests import ManifestRecord, find_manifests, run_summary
from esa.spec import Spec
from esa.spec.criteria import Finite, MetricBound, PplSanity, SeedCV
from esa.stageio import write_json


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


@evaluator("seed_cv")
def grade_seed_cv(criterion: SeedCV, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    if any(len(run.seeds) < 2 for run in runs):
        return Grade(None, "inconclusive", "seed variation needs at least two seeds per run", paths)
    per_run = {run.run: coefficient_of_variation(run.values(criterion.metric)) for run in runs}
    if not all(math.isfinite(v) for v in per_run.values()):
        bad = [name for name, v in per_run.items() if not math.isfinite(v)]
        return Grade(None, "inconclusive", f"non-finite {criterion.metric} in {', '.join(bad)}", paths)
    worst = max(per_run, key=per_run.get)
    return compare(per_run[worst], criterion, paths, f"worst run {worst}")


@evaluator("finite")
def grade_finite(criterion: Finite, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    seeds = [seed for run in runs for seed in run.seeds]
    ok = [math.isfinite(seed.metric(criterion.metric)) and seed.metrics.get("status", "ok") == "ok" for seed in seeds]
    return compare(sum(ok) / len(ok), criterion, paths, f"{sum(ok)}/{len(ok)} evaluations finite")


@evaluator("ppl_sanity")
def grade_ppl_sanity(criterion: PplSanity, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    seeds = [seed for run in runs for seed in run.seeds]
    ppl = [seed.metric("ppl") for seed in seeds]
    vocab = [seed.metric("vocab_size") for seed in seeds]
    if not all(math.isfinite(v) for v in ppl + vocab):
        return Grade(None, "inconclusive", "non-finite PPL or unknown vocabulary size", paths)
    lowest = min(ppl)
    if lowest < criterion.suspicious_below:
        return Grade(lowest, "fail", f"suspicious: PPL {lowest:.4g} < {criterion.suspicious_below:g} on held-out "
                     "text signals leakage or repeated data", paths)
    worst = max(p / v for p, v in zip(ppl, vocab))
    return compare(worst, criterion, paths, f"PPL range {lowest:.4g}–{max(ppl):.4g}")


@evaluator("metric_bound")
def grade_metric_bound(criterion: MetricBound, ctx: GradeContext) -> Grade:
    runs, paths, problem = _evidence(ctx.spec, criterion, ctx.root)
    if problem:
        return Grade(None, "inconclusive", problem, paths)
    values = [v for run in runs for v in run.values(criterion.metric)]
    if not all(math.isfinite(v) for v in values):
        return Grade(None, "inconclusive", f"non-finite {criterion.metric}", paths)
    aggregate = {"max": max, "min": min, "mean": lambda xs: sum(xs) / len(xs)}[criterion.aggregate]
    return compare(aggregate(values), criterion, paths, f"{criterion.aggregate} over {len(values)} evaluations")


def summarize_phase1(spec: Spec, root: Path) -> dict:
    summary = summarize(load_eval_evidence(spec, root))
    write_json(root / "results" / spec.name / "summary.json", summary)
    return summary


# Per phase, the analyses the grade stage computes (and writes for the report) before grading.
PHASE_ANALYSES = {1: summarize_phase1, 2: analyze_phase2, 3: analyze_phase3}


def phase_manifests(spec: Spec, root: Path) -> list[ManifestRecord]:
    """Manifests of this spec's current runs (folders of runs since removed from the spec are left out)."""
    run_ids = {run.id for run in spec.runs}
    return [r for r in find_manifests(root, spec.name) if r.run.split("/")[1] in run_ids]


def grade_spec(spec: Spec, root: Path) -> tuple[dict, Path]:
    """Grade every criterion of ``spec``; write results/<phase>/grades.json and summary.json."""
    out = root / "results" / spec.name
    analysis = PHASE_ANALYSES[spec.phase](spec, root) if spec.phase in PHASE_ANALYSES else {}
    ctx = GradeContext(spec, root, analysis)
    criteria = {}
    for criterion in spec.criteria:
        grade = EVALUATORS[criterion.kind](criterion, ctx)
        criteria[criterion.id] = {
            "hypothesis": criterion.hypothesis,
            "kind": criterion.kind,
            "description": criterion.description,
            "comparator": criterion.comparator,
            "threshold": criterion.threshold,
            **asdict(grade),
        }
    counts = {status: sum(c["status"] == status for c in criteria.values())
              for status in ("pass", "fail", "inconclusive")}
    grades = {
        "phase": spec.phase,
        "title": spec.title,
        "spec": spec.source,
        "spec_sha256": spec.sha256,
        "hypotheses": {h.id: h.statement for h in spec.hypotheses},
        "criteria": criteria,
        "counts": counts,
        "lock": lock_status(root / spec.source).to_dict(),
        "run": run_summary(phase_manifests(spec, root)),
        "graded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return grades, write_json(out / "grades.json", grades)


def print_grades(grades: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    colors = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    table = Table(title=f"Phase {grades['phase']} — {grades['title']}")
    for column in ("criterion", "hyp.", "value", "test", "status", "reason"):
        table.add_column(column)
    for cid, c in grades["criteria"].items():
        value = "—" if c["value"] is None else f"{c['value']:.4g}"
        table.add_row(cid, c["hypothesis"], value, f"{c['comparator']} {c['threshold']:g}",
                      f"[{colors[c['status']]}]{c['status']}[/]", c["reason"])
    Console().print(table)
    counts = grades["counts"]
    Console().print(f"{counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} inconclusive")
    lock = grades.get("lock")
    if lock:
        Console().print(lock_line(lock), highlight=False)
        if lock.get("diff"):
            Console().print(lock["diff"].rstrip(), markup=False, highlight=False)


def lock_line(lock: dict) -> str:
    """One line on pre-registration, e.g. 'pre-registered (locked 2026-11-25T21:00:00Z, sha256 1a2b3c…)'."""
    state = lock["state"]
    if state == "not locked":
        return "pre-registration: not locked (run `esa lock <spec>` before looking at results)"
    when = f"locked {lock['locked_at']}, sha256 {(lock.get('locked_sha256') or '')[:12]}…"
    notes = []
    if lock.get("results_existed_at_lock"):
        notes.append("locked after results existed")
    if lock.get("amendments"):
        notes.append(f"re-locked {len(lock['amendments'])}×: " + "; ".join(a.get("reason") or "?" for a in lock["amendments"]))
    changed = [f"{section} {', '.join(f'{k} {v}' for k, v in items.items())}"
               for section, items in (lock.get("changes") or {}).items()]
    if changed:
        notes.append("changed: " + "; ".join(changed))
    return f"pre-registration: {state} ({when})" + (f" — {' — '.join(notes)}" if notes else "")
