"""Run kind ``scaling``: how a sensitivity quantity scales with model size across a ladder of models.

A scaling run computes nothing on a model. It names the spec's score runs (a sweep over models, one run per model)
and optionally its perturb runs, reads their per-seed results in the grade stage and fits each quantity against N
(esa.analysis.scaling). Its criteria (esa.spec.scaling_criteria) name the run and the quantity.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from esa.spec.names import Control, MetricName, Mode
from esa.spec.runs import Ident

# Per-model quantities a scaling run measures (esa.analysis.scaling_quantities); criteria name one.
SCALING_QUANTITIES = {
    "critical_fraction": "share of scored weights whose score exceeds critical_multiple × the median score",
    "top_mass_0.1pct": "share of the total score mass held by the top 0.1% of weights",
    "top_mass_1pct": "share of the total score mass held by the top 1% of weights",
    "hill_alpha": "pooled Hill tail index of the score distributions (smaller: heavier tail)",
    "stability_jaccard": "mean pairwise Jaccard of the top-k sets across seeds",
    "spike_ratio": "largest super-weight spike ratio min(input, output) over the MLP down projections",
    "delta_ppl_ratio": "ΔPPL of perturbing the super set / ΔPPL of perturbing the matched control (Phase 3)",
}
SIZES = ("non_embedding", "active_non_embedding", "total")


class ScalingRun(BaseModel):
    """Fit each quantity of the ladder's models against their size N (per model: the mean over seeds)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["scaling"]
    id: Ident
    description: str = ""
    scores: Ident = Field(description="a score run of this spec, or the id of a sweep of score runs (one per model)")
    perturb: Ident | None = Field(None, description=(
        "a perturb run or a sweep of perturb runs (one per model) giving the ΔPPL ratio; none: no ΔPPL ratio"))
    models: list[str] | None = Field(None, min_length=1, description=(
        "the models of those runs that form the ladder (default: all of them)"))
    metric: MetricName = Field("grad_x_weight", description="the score whose distribution and top-k are measured")
    mode: Mode = Field("per_layer", description="selection mode of the top-k sets (stability_jaccard)")
    k: int = Field(100, gt=0, description="top-k size (stability_jaccard)")
    critical_multiple: float = Field(10.0, gt=1, description="critical_fraction: the multiple of the median score")
    control: Control = Field("random_k", description="delta_ppl_ratio: the perturb run's control in the denominator")
    size: Literal[SIZES] = Field("non_embedding", description=(
        "N: non-embedding parameters (embeddings and an untied head left out), the active ones of a MoE, or all"))

    @field_validator("models")
    @classmethod
    def _distinct(cls, value):
        if value is not None and len(set(value)) != len(value):
            raise ValueError("models must be distinct")
        return value

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(exclude={"id", "kind", "description"})


def runs_named(spec, name: str, kind: str) -> list:
    """The runs of ``kind`` a scaling run names: a sweep's members, or one run."""
    ids = spec.sweep_members(name) or [name]
    return [run for run in spec.runs if run.id in ids and run.kind == kind]


def ladder_runs(spec, run: ScalingRun) -> list[tuple[str, Any, Any]]:
    """(model, its score run, its perturb run or None) for each model of the ladder, in the order the runs list them.

    Assumes the compile-time checks passed (esa.compile.scaling_checks): one score run and at most one perturb run
    per model.
    """
    scores = {r.model: r for r in runs_named(spec, run.scores, "score")}
    perturbs = {r.model: r for r in runs_named(spec, run.perturb, "perturb")} if run.perturb else {}
    models = run.models or list(scores)
    return [(model, scores[model], perturbs.get(model)) for model in models if model in scores]
