"""Criterion kinds on a scaling law across a ladder of models (esa.analysis.scaling): how well a power law in N
fits, how well it predicts a model it did not see, and where its exponent α lies.

They grade runs of kind ``scaling`` (esa.spec.scaling_runs): each names the run and the quantity whose fit it grades.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from esa.spec.criteria import Comparator, Ident, _CriterionBase
from esa.spec.scaling_runs import SCALING_QUANTITIES

Quantity = Literal[tuple(SCALING_QUANTITIES)]


class _ScalingCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "scaling"
    run: Ident = Field(description="id of a scaling run")
    quantity: Quantity = Field(description="the per-model quantity whose fit against N is graded")


class PowerLawFit(_ScalingCriterion):
    """R² of the power law log y = log a + α log N over the per-model means of y, with a CI from the parametric
    bootstrap over seeds (each model's log mean drawn from its t sampling distribution); inconclusive when some model has a single seed (no CI)."""

    kind: Literal["power_law_fit"]
    comparator: Comparator = ">"
    threshold: float = 0.8


class PredictionError(_ScalingCriterion):
    """Leave-one-out relative error |pred − obs| / obs of each model's mean y, predicted by the power law of the
    other models; the max or the median over models, with a CI from the parametric bootstrap over seeds."""

    kind: Literal["prediction_error"]
    aggregate: Literal["max", "median"] = "max"
    comparator: Comparator = "<"
    threshold: float = 0.2


class Exponent(_ScalingCriterion):
    """Where the power law's exponent α lies. With ``range: [low, high]``: pass when α's CI lies inside it, fail
    when the CI lies entirely outside, inconclusive when it straddles an end. With ``excludes_zero: true``: pass
    when the CI excludes 0, fail when it lies inside [−zero_margin, zero_margin] (no scaling worth the name),
    inconclusive otherwise. CI: bootstrap over seeds, or α's OLS CI when some model has a single seed."""

    kind: Literal["exponent"]
    range: tuple[float, float] | None = Field(None, description="[low, high] the exponent α should lie in")
    excludes_zero: bool = Field(False, description="α's CI should exclude 0 (the quantity scales with N at all)")
    zero_margin: float = Field(0.05, gt=0, description=(
        "with excludes_zero: a CI inside [−zero_margin, zero_margin] fails (α is negligibly small)"))

    # What grades.json, the pages and the README show in their test column: "in [low, high]" or "excludes 0".
    @property
    def comparator(self) -> str:
        return "in" if self.range is not None else "excludes"

    @property
    def threshold(self) -> str | float:
        return f"[{self.range[0]:g}, {self.range[1]:g}]" if self.range is not None else 0.0

    @model_validator(mode="after")
    def _one_form(self):
        if (self.range is None) == (not self.excludes_zero):
            raise ValueError("exponent takes either `range: [low, high]` or `excludes_zero: true`, not both or "
                             "neither")
        if self.range is not None:
            low, high = self.range
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"range must be two finite numbers [low, high] with low < high, got {list(self.range)}")
        return self


SCALING_CRITERION_MODELS = (PowerLawFit, PredictionError, Exponent)
