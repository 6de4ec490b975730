"""Run kind ``architecture``: where sensitivity lies in models of different architectures (dense, MoE, instruction
tuned), read from the spec's score runs (one per model) in the grade stage (esa.analysis.architecture)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from esa.spec.names import MetricName
from esa.spec.runs import Ident


class ArchitectureRun(BaseModel):
    """Component-group shares of the score mass, their depth profile, MoE expert and router shares, differences
    between models, and named base → instruct top-k shifts; every statistic with a bootstrap CI over seeds."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["architecture"]
    id: Ident
    description: str = ""
    scores: Ident = Field(description="a score run of this spec, or the id of a sweep of score runs (one per model)")
    models: list[str] | None = Field(None, min_length=1, description="the models compared (default: all of them)")
    metric: MetricName = "grad_x_weight"
    k: int | None = Field(None, gt=0, description="per-matrix top-k of the shifts (default: the runs' stored k)")
    shifts: dict[Ident, tuple[str, str]] = Field(default_factory=dict, description=(
        "named base → instruct pairs, e.g. {instruct: [ref-s, ref-s-instruct]}: top-k Jaccard against chance, and "
        "which components kept their top-k"))

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(exclude={"id", "kind", "description"})


def architecture_models(spec, run: ArchitectureRun) -> list[tuple[str, Any]]:
    """(model, its score run) for each model compared (assumes the compile-time checks passed)."""
    from esa.spec.scaling_runs import runs_named

    scores = {r.model: r for r in runs_named(spec, run.scores, "score")}
    return [(model, scores[model]) for model in (run.models or list(scores)) if model in scores]
