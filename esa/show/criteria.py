"""What one criterion grades, as short phrases: the run(s) it reads, its settings with the defaults the grader
fills in (k = the run's topk, level = the run's first), and its threshold."""

from __future__ import annotations

from esa.show.runs import value_text
from esa.spec import Spec

SKIP = {"id", "kind", "hypothesis", "description", "comparator", "threshold", "run", "runs", "repeat", "a", "b",
        "k", "level"}


def _runs(criterion, spec: Spec) -> str:
    if hasattr(criterion, "runs"):
        if criterion.runs == "all":
            return "all eval runs (" + ", ".join(r.id for r in spec.runs if r.kind == "eval") + ")"
        named = []
        for name in criterion.runs:
            members = spec.sweep_members(name)
            named.append(f"{name} ({', '.join(members)})" if members else name)
        return "runs " + ", ".join(named)
    if hasattr(getattr(criterion, "a", None), "run"):
        return f"runs {criterion.a.run}/{criterion.a.metric} vs {criterion.b.run}/{criterion.b.metric}"
    if hasattr(criterion, "a"):  # two arms or models of one run (b optional for flips_to_collapse)
        return f"run {criterion.run}: {criterion.a}" + (f" vs {criterion.b}" if criterion.b is not None else "")
    if hasattr(criterion, "repeat"):
        return f"runs {criterion.run} and repeat {criterion.repeat}"
    return f"run {criterion.run}"


def _defaults(criterion, spec: Spec) -> list[str]:
    """k and level as the grader resolves them when the spec leaves them out."""
    phrases = []
    if "k" in type(criterion).model_fields and criterion.kind not in ("hotspot", "tail_ratio"):
        if criterion.k is not None:
            phrases.append(f"k {criterion.k}")
        elif hasattr(getattr(criterion, "a", None), "run"):
            phrases.append(f"k {min(spec.run(criterion.a.run).topk, spec.run(criterion.b.run).topk)} (smaller topk)")
        else:
            phrases.append(f"k {spec.run(criterion.run).topk} (topk)")
    if "level" in type(criterion).model_fields and criterion.kind != "monotonic":
        run = spec.run(criterion.run)
        first = (run.levels or [run.scale])[0]
        phrases.append(f"level {criterion.level:g}" if criterion.level is not None else f"level {first:g} (first)")
    return phrases


def criterion_phrases(criterion, spec: Spec) -> tuple[list[str], list[str]]:
    """(heading, phrases): kind, hypothesis and run(s); then its settings and threshold."""
    heading = [criterion.kind, criterion.hypothesis, _runs(criterion, spec)]
    settings = [f"{name} {value_text(getattr(criterion, name))}" for name in type(criterion).model_fields
                if name not in SKIP and getattr(criterion, name) is not None]
    condition = f"threshold {criterion.comparator} {value_text(criterion.threshold)}"
    return heading, [*settings, *_defaults(criterion, spec), condition]
