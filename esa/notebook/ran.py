"""Which of a spec's stages ran in one revision or experiment, as against reused from DVC's cache.

A revision's grades.json lists every stage's manifest (start time, duration) under run.per_run, including the
stages DVC restored from the cache unchanged. A stage ran in this revision when its manifest differs from the
one in the revision it was made from; the grade stage ran when grades.json itself differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ran:
    graded: bool  # the grade stage ran (grades.json differs from the parent revision's)
    stages: int  # run stages that ran here (all recorded ones when there is no parent to compare with)
    compute_s: float | None  # their stage compute
    cached: int | None = None  # stages reused unchanged; None when there is nothing to compare with


def _per_run(grades: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    per_run = ((grades or {}).get("run") or {}).get("per_run")
    return per_run if isinstance(per_run, Mapping) else None


def stages_ran(grades: Mapping[str, Any], parent: Mapping[str, Any] | None, known_parent: bool) -> Ran:
    """What ran for one spec: ``parent`` is the parent revision's grades of the same spec (None when it has
    none: a new spec), ``known_parent`` whether a parent revision with grades is in view at all."""
    run = grades.get("run") or {}
    everything = Ran(True, int(run.get("stages") or 0), run.get("compute_s"))
    if not known_parent:
        return everything
    per_run = _per_run(grades)
    if parent is not None and dict(grades) == dict(parent):
        return Ran(False, 0, 0.0, len(per_run) if per_run is not None else int(run.get("stages") or 0))
    if per_run is None:  # written before manifests were listed per stage: cannot tell
        return everything
    before = _per_run(parent) or {}
    ran = [name for name, stage in per_run.items() if before.get(name) != stage]
    compute = sum(float(per_run[name].get("duration_s") or 0.0) for name in ran if isinstance(per_run[name], Mapping))
    return Ran(True, len(ran), round(compute, 3), len(per_run) - len(ran))
