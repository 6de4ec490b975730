"""Compile checks of the Phase-5 runs (prune, adapt, faults) against the score runs they read: saved scores of the metrics
they rank by, and a prune run's protected selection."""

from __future__ import annotations

from esa.compile.references import CRITICAL_SET_KINDS, score_run_of
from esa.spec import Spec, SpecError


def _score_problem(run, target, ref_run: str, source_path: str) -> str | None:
    if target is None or target.kind != "score":
        return f"{source_path} has no score run '{ref_run}'"
    if (target.model, target.data) != (run.model, run.data):
        return f"score run '{ref_run}' scored {target.model} on {target.data}, this run uses {run.model}"
    return None


def check_application_references(spec: Spec, specs: dict[str, Spec]) -> list[SpecError]:
    """The score run exists, scored this model and saves the metrics the methods rank by; the protected set is a
    selection a score run of that spec stores."""
    errors = []
    for run in spec.runs:
        if run.kind not in ("prune", "adapt"):
            continue
        source = specs.get(run.scores.spec)
        if source is None:
            errors.append(spec.error_at_run(run.id, "scores", f"no spec at {run.scores.spec}"))
            continue
        target = score_run_of(source, run)
        problem = _score_problem(run, target, run.scores.run, run.scores.spec)
        if problem is None:
            lacking = [m for m in run.saved_metrics() if m not in target.metrics]
            if lacking:
                problem = f"score run '{run.scores.run}' does not compute {', '.join(lacking)}, which {run.needs(lacking)}"
            elif run.saved_metrics() and target.save_scores is False:
                problem = f"score run '{run.scores.run}' has save_scores: false; this run reads its saved scores"
        if problem:
            errors.append(spec.error_at_run(run.id, "scores", problem))
        if getattr(run, "protect", None) is not None:
            problem = _selection_problem(run, source, run.protect, run.scores.spec)
            if problem:
                errors.append(spec.error_at_run(run.id, "protect", problem))
    return errors


def _selection_problem(run, source: Spec, ref, source_path: str) -> str | None:
    """A stored selection (run, metric, mode, k) that a score run of ``source`` makes for this run's model."""
    chosen = next((r for r in source.runs if r.id == ref.run), None)
    problem = _score_problem(run, chosen, ref.run, source_path)
    if problem is None and ref.metric not in chosen.metrics:
        problem = f"score run '{ref.run}' does not compute {ref.metric}"
    elif problem is None and ref.mode not in chosen.modes:
        problem = f"score run '{ref.run}' does not select in {ref.mode} mode"
    elif problem is None and ref.k is not None and ref.k > chosen.topk:
        problem = f"k {ref.k} exceeds score run '{ref.run}' topk {chosen.topk}"
    return problem


def check_critical_sets(spec: Spec, specs: dict[str, Spec]) -> list[SpecError]:
    """A faults or interpret run's critical set is a selection that a score run of its spec stores for this model."""
    errors = []
    for run in spec.runs:
        if run.kind not in CRITICAL_SET_KINDS:
            continue
        source = specs.get(run.critical.spec)
        problem = f"no spec at {run.critical.spec}" if source is None else \
            _selection_problem(run, source, run.critical, run.critical.spec)
        if problem:
            errors.append(spec.error_at_run(run.id, "critical", problem))
    return errors
