"""The analysis of one run that reads other runs' results (scaling, architecture), as its graders look it up in
analysis.json: the summary, its evidence, or the one-line reason there is none to grade."""

from __future__ import annotations

from esa.grading.criteria import GradeContext


def run_summary(ctx: GradeContext, run_id: str, kind: str) -> tuple[dict | None, list[str], str | None]:
    """(summary, evidence, problem): problem is None when the summary can be graded."""
    summary = ctx.analysis.get("runs", {}).get(run_id)
    if summary is None:
        return None, [], f"no {kind} analysis of run {run_id}"
    evidence = list(summary.get("evidence", []))
    missing = summary.get("missing") or []
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        return None, evidence, f"missing evidence: {', '.join(missing[:3])}{more}"
    if summary.get("error"):
        return None, evidence, summary["error"]
    return summary, evidence, None
