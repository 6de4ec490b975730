"""The check every run kind's test file makes about its graders (imported by the test_*_kind files)."""

from __future__ import annotations

import typing

from esa.report import grade  # noqa: F401  (registers every evaluator)
from esa.report.grading import EVALUATORS
from esa.spec.criteria import Criterion

OUTCOMES = ["fail", "inconclusive", "pass"]

# Which criterion kinds grade which run kind's results (a new criterion kind must be placed here).
CRITERIA_BY_RUN_KIND = {
    "eval": ("seed_cv", "finite", "ppl_sanity", "metric_bound"),
    "score": ("jaccard_stability", "metric_overlap", "tail_ratio", "hotspot"),
    "ablation_check": ("ablation_spearman",),
    "perturb": ("ratio", "hierarchy", "significance", "monotonic", "min_effect", "repeatability", "determinism"),
}


def criterion_kinds() -> set[str]:
    """Every kind the spec's Criterion union accepts."""
    union = typing.get_args(Criterion)[0]  # Annotated[Union[...], Field(discriminator="kind")]
    return {typing.get_args(model.model_fields["kind"].annotation)[0] for model in typing.get_args(union)}


def check_outcomes(record, kind: str) -> None:
    """tests/grading produced pass, fail and inconclusive for this criterion kind in tests that passed."""
    assert kind in EVALUATORS, f"no evaluator registered for {kind}"
    seen = record.statuses().get(kind, [])
    assert seen == OUTCOMES, f"tests/grading grades {kind} only as {seen}; add constructed cases for the others"
