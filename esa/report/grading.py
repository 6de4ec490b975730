"""The criterion-evaluator registry shared by every phase: a Grade, the comparator, and registration."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from esa.spec import Spec

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}


@dataclass
class Grade:
    value: float | None
    status: str  # pass | fail | inconclusive
    reason: str
    evidence: list[str] = field(default_factory=list)
    ci: list[float] | None = None
    p: float | None = None


def compare(value: float | None, criterion, evidence: list[str], reason: str = "") -> Grade:
    """Apply the criterion's comparator; a missing or non-finite value cannot pass or fail."""
    if value is None or not math.isfinite(value):
        return Grade(None if value is None else value, "inconclusive", reason or "no finite value to grade", evidence)
    ok = COMPARATORS[criterion.comparator](value, criterion.threshold)
    verdict = f"{value:.4g} {criterion.comparator} {criterion.threshold:g}"
    return Grade(value, "pass" if ok else "fail", f"{verdict} is {'true' if ok else 'false'}"
                 + (f"; {reason}" if reason else ""), evidence)


EVALUATORS: dict[str, Callable] = {}


@dataclass
class GradeContext:
    """What an evaluator reads: the spec, the project root, and the phase's analyses (computed once)."""

    spec: Spec
    root: Path
    analysis: dict = field(default_factory=dict)


def evaluator(kind: str):
    def register(func):
        EVALUATORS[kind] = func
        return func
    return register
