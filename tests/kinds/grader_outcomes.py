"""The check every run kind's test file makes about its graders (imported by the test_*_kind files)."""

from __future__ import annotations

import typing

from esa.kinds import KINDS  # registers every evaluator
from esa.grading.criteria import EVALUATORS
from esa.spec.all_criteria import Criterion

OUTCOMES = ["fail", "inconclusive", "pass"]

# Which criterion kinds grade which run kind's results (each criterion model declares its run_kind).
CRITERIA_BY_RUN_KIND = {name: tuple(kind.criteria()) for name, kind in KINDS.items()}


def criterion_kinds() -> set[str]:
    """Every kind the spec's Criterion union accepts."""
    union = typing.get_args(Criterion)[0]  # Annotated[Union[...], Field(discriminator="kind")]
    return {typing.get_args(model.model_fields["kind"].annotation)[0] for model in typing.get_args(union)}


def check_outcomes(record, kind: str) -> None:
    """tests/grading produced pass, fail and inconclusive for this criterion kind in tests that passed."""
    assert kind in EVALUATORS, f"no evaluator registered for {kind}"
    seen = record.statuses().get(kind, [])
    assert seen == OUTCOMES, f"tests/grading grades {kind} only as {seen}; add constructed cases for the others"
