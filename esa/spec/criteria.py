"""Criterion kinds a spec may declare: a tagged union on ``kind``.

Each kind is a small typed model; the grader (esa.report.grade) holds one evaluator per kind.
Add a kind by adding a model here, listing it in ``Criterion`` and registering its evaluator.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Comparator = Literal["<", "<=", ">", ">=", "=="]
EvalMetric = Literal["ppl", "bits_per_byte", "top1_accuracy", "nll_per_token"]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)]


class _CriterionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Ident
    hypothesis: Ident = Field(description="id of the hypothesis this criterion tests")
    description: str = ""
    runs: Literal["all"] | list[Ident] = Field(
        "all", description="run ids (or sweep ids, meaning all their runs) whose results this criterion reads")


class SeedCV(_CriterionBase):
    """Coefficient of variation (std/mean, ddof=1) of a metric across seeds; the worst run is graded."""

    kind: Literal["seed_cv"]
    metric: EvalMetric = "ppl"
    comparator: Comparator = "<"
    threshold: float = 0.05


class Finite(_CriterionBase):
    """Fraction of (run, seed) results whose metric is finite and whose evaluation did not diverge."""

    kind: Literal["finite"]
    metric: EvalMetric = "ppl"
    comparator: Comparator = "=="
    threshold: float = 1.0


class PplSanity(_CriterionBase):
    """Worst-case PPL as a fraction of the vocabulary size (a uniform guess scores 1.0).

    A PPL below ``suspicious_below`` fails as suspicious: on real text it signals leakage or repeated data.
    """

    kind: Literal["ppl_sanity"]
    comparator: Comparator = "<"
    threshold: float = 0.1
    suspicious_below: float = 1.5


class MetricBound(_CriterionBase):
    """An aggregate (max, min, mean) of a metric over the selected runs' seeds against a threshold."""

    kind: Literal["metric_bound"]
    metric: EvalMetric = "ppl"
    aggregate: Literal["max", "min", "mean"] = "max"
    comparator: Comparator
    threshold: float


Criterion = Annotated[Union[SeedCV, Finite, PplSanity, MetricBound], Field(discriminator="kind")]
