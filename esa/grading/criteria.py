"""The criterion-evaluator registry shared by every phase: a Grade, the comparator, and registration."""

from __future__ import annotations

import functools
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
    exploratory: bool = False  # the spec marks the criterion exploratory
    family: str | None = None  # the Holm family its p-values were corrected in (kinds with a test)


def compare(value: float | None, criterion, evidence: list[str], reason: str = "") -> Grade:
    """Apply the criterion's comparator; a missing or non-finite value cannot pass or fail."""
    if value is None or not math.isfinite(value):
        return Grade(None if value is None else value, "inconclusive", reason or "no finite value to grade", evidence)
    ok = COMPARATORS[criterion.comparator](value, criterion.threshold)
    verdict = f"{value:.4g} {criterion.comparator} {criterion.threshold:g}"
    return Grade(value, "pass" if ok else "fail", f"{verdict} is {'true' if ok else 'false'}"
                 + (f"; {reason}" if reason else ""), evidence)


def compare_ci(value: float | None, ci: tuple[float, float] | list[float] | None, criterion, evidence: list[str],
               reason: str = "", p: float | None = None) -> Grade:
    """A verdict that uses its uncertainty: pass only when the whole CI lies on the passing side of the threshold,
    fail when the whole CI lies on the failing side, inconclusive when it straddles the threshold.

    CI ends may be infinite (an unbounded side). No finite value or no CI: inconclusive.
    """
    def done(status: str, why: str) -> Grade:
        return Grade(value, status, why + (f"; {reason}" if reason else ""), evidence,
                     None if ci is None else [float(c) for c in ci], p)

    if value is None or not math.isfinite(value):
        return Grade(value, "inconclusive", reason or "no finite value to grade", evidence,
                     None if ci is None else [float(c) for c in ci], p)
    if ci is None or len(ci) != 2 or any(math.isnan(c) for c in ci):
        return done("inconclusive", f"{value:.4g} has no confidence interval")
    lo, hi = sorted(float(c) for c in ci)
    cmp, thr = criterion.comparator, criterion.threshold
    test = COMPARATORS[cmp]
    shown = f"CI [{lo:.4g}, {hi:.4g}] {cmp} {thr:g}"
    if cmp == "==":
        if lo == hi == thr:
            return done("pass", f"{shown}: the interval is the threshold")
        if thr < lo or thr > hi:
            return done("fail", f"{shown}: the threshold lies outside the interval")
        return done("inconclusive", f"{shown}: the interval contains the threshold but is not a point")
    if test(lo, thr) and test(hi, thr):
        return done("pass", f"{shown} holds for the whole interval")
    if not test(lo, thr) and not test(hi, thr):
        return done("fail", f"{shown} fails for the whole interval")
    return done("inconclusive", f"{shown}: the interval straddles the threshold")


EVALUATORS: dict[str, Callable] = {}


@dataclass
class GradeContext:
    """What an evaluator reads: the spec, the project root, and the phase's analyses (computed once)."""

    spec: Spec
    root: Path
    analysis: dict = field(default_factory=dict)


def evaluator(kind: str):
    """Register ``func`` as the grader of ``kind``; the registered grader also records what the spec pre-registered
    about the criterion (exploratory, Holm family), so every grade carries it whatever the evaluator returns."""
    def register(func):
        @functools.wraps(func)
        def graded(criterion, ctx: GradeContext) -> Grade:
            grade = func(criterion, ctx)
            grade.exploratory = bool(getattr(criterion, "exploratory", False))
            grade.family = criterion.holm_family() if hasattr(criterion, "holm_family") else None
            return grade

        EVALUATORS[kind] = graded
        return func
    return register
