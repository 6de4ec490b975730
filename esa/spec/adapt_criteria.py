"""Criterion kinds on adapt runs (esa.spec.adapt_runs): how two training arms differ in forgetting or gain."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from esa.spec.adapt_runs import Arm
from esa.spec.criteria import Comparator, Ident, _CriterionBase

MEASURES = {
    "forgetting": "ΔNLL per token on the original evaluation windows, after − before (higher: more forgotten)",
    "gain": "NLL per response token on held-out instruction pairs, before − after (higher: more learned)",
}


class AdaptDifference(_CriterionBase):
    """measure(arm a) − measure(arm b) in nats per token, the median over seeds, graded on the envelope of the
    seeds' paired cluster-bootstrap CIs (evaluation documents resampled). E.g. ``measure: forgetting, a: frozen,
    b: full, comparator: "<"``: freezing the critical set forgets less than full fine-tuning."""

    run_kind: ClassVar[str] = "adapt"
    kind: Literal["adapt_difference"]
    run: Ident = Field(description="id of an adapt run")
    measure: Literal[tuple(MEASURES)]
    a: Arm
    b: Arm
    comparator: Comparator
    threshold: float = 0.0


def check_adapt_criterion(spec, criterion, path: tuple) -> list[tuple[tuple, str]]:
    run = spec.run(criterion.run)
    return [(path + (side,), f"run '{run.id}' has no arm '{arm}' (arms: {', '.join(run.arms)})")
            for side in ("a", "b") if (arm := getattr(criterion, side)) not in run.arms]


ADAPT_CRITERION_MODELS = (AdaptDifference,)
