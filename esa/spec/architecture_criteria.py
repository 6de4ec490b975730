"""Criterion kinds on an architecture comparison (esa.analysis.architecture): where score mass lies by component
group, how two models differ in it, how evenly an MoE's experts share it, and how much of the top-k survives
instruction tuning.

They grade runs of kind ``architecture`` (esa.spec.architecture_runs).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from esa.spec.criteria import Comparator, Ident, _CriterionBase

Group = Literal["attention", "mlp", "router", "other"]


class _ArchitectureCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "architecture"
    run: Ident = Field(description="id of an architecture run")


class ShareDifference(_ArchitectureCriterion):
    """Share of the score mass in a component group, model ``a`` minus model ``b`` (mean over each model's seeds),
    graded on its CI: percentile bootstrap with each model's seeds resampled independently. The permutation p over
    seed labels is stated in the reason, uncorrected (with n seeds per model it cannot go below 1/C(2n, n))."""

    kind: Literal["share_difference"]
    a: str = Field(min_length=1, description="model whose share comes first (as the runs name it)")
    b: str = Field(min_length=1, description="model whose share is subtracted")
    group: Group
    comparator: Comparator = ">"
    threshold: float = 0.0


class ComponentShare(_ArchitectureCriterion):
    """One model's share of the score mass in a component group, or its enrichment (mass share / parameter
    share; 1 = as much mass as parameters), mean over seeds with a bootstrap CI over seeds."""

    kind: Literal["component_share"]
    model: str = Field(min_length=1, description="a compared model, as the runs name it")
    group: Group
    measure: Literal["share", "enrichment"] = "enrichment"
    comparator: Comparator = ">"
    threshold: float = 1.0


class ExpertBalance(_ArchitectureCriterion):
    """Largest over smallest expert share of a layer's expert mass in an MoE model (1 = perfectly even), averaged
    over layers (an expert index means nothing across layers), mean over seeds with a t-interval over seeds.
    Inconclusive for a dense model."""

    kind: Literal["expert_balance"]
    model: str = Field(min_length=1, description="a compared MoE model, as the runs name it")
    comparator: Comparator = "<"
    threshold: float = 2.0


class TopkShift(_ArchitectureCriterion):
    """Base → instruct agreement of the per-matrix top-k over shared seeds: the pooled Jaccard (``jaccard``), the
    Jaccard over its chance value for random k-subsets of each matrix (``jaccard_over_chance``; 1 = no more
    overlap than chance), or with ``component`` the share of that component's base top-k the instruct model
    keeps. Mean over seeds, paired bootstrap CI over seeds; the chance level is stated in the reason."""

    kind: Literal["topk_shift"]
    shift: Ident = Field(description="name of a base → instruct pair in the architecture run")
    measure: Literal["jaccard", "jaccard_over_chance", "kept"] = "jaccard"
    component: str | None = Field(None, description="with measure kept: the component (e.g. attn_q, mlp_down)")
    comparator: Comparator = "<"
    threshold: float = 0.5

    @model_validator(mode="after")
    def _component_with_kept(self):
        if (self.measure == "kept") != (self.component is not None):
            raise ValueError("topk_shift: `component` goes with `measure: kept`, and only with it")
        return self


ARCHITECTURE_CRITERION_MODELS = (ShareDifference, ComponentShare, ExpertBalance, TopkShift)
