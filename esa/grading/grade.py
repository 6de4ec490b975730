"""Grading: one evaluator per criterion kind turns a phase's artifacts into pass / fail / inconclusive.

Grades are computed here once (the `grade.<phase>` stage) and only displayed by reports.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from esa.grading.criteria import EVALUATORS, GradeContext
from esa.grading.criteria_values import criteria_values
from esa.grading.draws import describe, overlap_problem, phase_draws, shortfall_note
from esa.kinds import kinds_of
from esa.notebook.lock import lock_status
from esa.notebook.manifests import ManifestRecord, find_manifests, run_summary
from esa.spec import Spec
from esa.stageio import write_json


def analyze(spec: Spec, root: Path) -> dict:
    """Each run kind's analysis (computed once, before grading), merged; written as analysis.json when any kind
    writes one. Kinds contribute their runs under "runs" and phase-level entries (e.g. "holm") beside them."""
    analysis: dict = {}
    kinds = kinds_of(spec)
    for kind in kinds:
        for key, value in (kind.analyze(spec, root) if kind.analyze else {}).items():
            if key == "runs":
                analysis.setdefault("runs", {}).update(value)
            elif key in analysis:
                raise ValueError(f"run kinds '{kind.name}' and another both write '{key}' into analysis.json")
            else:
                analysis[key] = value
    if any("analysis.json" in kind.outputs for kind in kinds):
        write_json(root / "results" / spec.name / "analysis.json", analysis)
    return analysis


def phase_manifests(spec: Spec, root: Path) -> list[ManifestRecord]:
    """Manifests of this spec's current runs (folders of runs since removed from the spec are left out)."""
    run_ids = {run.id for run in spec.runs}
    return [r for r in find_manifests(root, spec.name) if r.run.split("/")[1] in run_ids]


def seed_compared_runs(criterion, spec: Spec) -> list[str]:
    """Runs whose seeds a criterion compares as independent replicates (their data must be disjoint)."""
    if criterion.kind == "seed_cv":
        return [run.id for run in spec.select_runs(criterion.runs)]
    if criterion.kind in ("jaccard_stability", "hotspot"):
        return [criterion.run]
    return []


def gate_on_draws(grade, criterion, spec: Spec, draws: dict[str, dict]):
    """A seed comparison on seeds that shared data is inconclusive, whatever the number says."""
    runs = seed_compared_runs(criterion, spec)
    problems = [f"{run}: {why}" for run in runs if (why := overlap_problem(draws.get(run)))]
    notes = [f"{run}: {note}" for run in runs if (note := shortfall_note(draws.get(run)))]
    if problems:
        grade.status = "inconclusive"
        grade.reason = "; ".join(problems) + (f" — {grade.reason}" if grade.reason else "")
    if notes:
        grade.reason += "; " + "; ".join(notes)
    return grade


def grade_spec(spec: Spec, root: Path) -> tuple[dict, Path]:
    """Grade every criterion of ``spec``; write results/<phase>/grades.json (and the analyses' files)."""
    out = root / "results" / spec.name
    analysis = analyze(spec, root)
    ctx = GradeContext(spec, root, analysis)
    draws = phase_draws(spec, root)
    criteria = {}
    for criterion in spec.criteria:
        grade = gate_on_draws(EVALUATORS[criterion.kind](criterion, ctx), criterion, spec, draws)
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
        # Numbers only (value, status code, CI ends), so `dvc exp show` has a column per criterion.
        "criteria_values": criteria_values(criteria),
        "draws": draws,
        # Scalars only, so `dvc exp show` (which drops lists) and the research log carry them.
        "data_draws": {run: describe(d) for run, d in draws.items()},
        "lock": lock_status(root / spec.source).to_dict(),
        "run": run_summary(phase_manifests(spec, root)),
        "graded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return grades, write_json(out / "grades.json", grades)


def print_grades(grades: dict) -> None:
    import shutil

    from rich.console import Console
    from rich.table import Table

    colors = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    # The terminal's width (COLUMNS first), not rich's 80 when output is piped; a wide fallback keeps logs whole.
    width = shutil.get_terminal_size((160, 24)).columns
    table = Table(title=f"Phase {grades['phase']} — {grades['title']}")
    # Ids are what one greps for: keep them on one line where a third of the width allows, else fold them
    # onto further lines, never cut them with an ellipsis.
    longest = max((len(cid) for cid in grades["criteria"]), default=0)
    table.add_column("criterion", overflow="fold", min_width=min(longest, max(width // 3, 8)))
    table.add_column("hyp.", overflow="fold")
    for column in ("value", "test", "status", "reason"):
        table.add_column(column)
    for cid, c in grades["criteria"].items():
        value = "—" if c["value"] is None else f"{c['value']:.4g}"
        # A threshold is a number, or a range written out ("[-0.5, -0.2]" for an exponent's `in`).
        threshold = c["threshold"] if isinstance(c["threshold"], str) else f"{c['threshold']:g}"
        table.add_row(cid, c["hypothesis"], value, f"{c['comparator']} {threshold}",
                      f"[{colors[c['status']]}]{c['status']}[/]", c["reason"])
    console = Console(width=width)
    console.print(table)
    counts = grades["counts"]
    console.print(f"{counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} inconclusive")
    lock = grades.get("lock")
    if lock:
        console.print(lock_line(lock), highlight=False)
        if lock.get("diff"):
            console.print(lock["diff"].rstrip(), markup=False, highlight=False)


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


def main(argv: list[str]) -> int:
    """The grade stage (stages/grade.py SPEC): grade, write, say where; a bad spec is one line and exit code 2."""
    import sys

    from esa.spec import SpecErrors, load_spec

    if len(argv) != 1:
        print("usage: python stages/grade.py SPEC", file=sys.stderr)
        return 2
    try:
        spec = load_spec(argv[0])
    except SpecErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return 2
    _, path = grade_spec(spec, Path.cwd())
    print(f"wrote {path}")
    return 0
