"""Criterion kinds a spec may declare: a tagged union on ``kind``.

Each kind is a small typed model; the grader (esa.grading.grade) holds one evaluator per kind.
Add a kind by adding a model here (or in its run kind's own module), listing it in esa.spec.all_criteria's
``Criterion`` union and registering its evaluator.
"""

from __future__ import annotations

import math

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from esa.spec.names import Control, MetricName, Mode, Target

Comparator = Literal["<", "<=", ">", ">=", "=="]
EvalMetric = Literal["ppl", "bits_per_byte", "top1_accuracy", "nll_per_token"]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)]


class _CriterionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The kind of run this criterion grades: the runs it names (run, repeat, against, a.run, b.run) must be of it.
    run_kind: ClassVar[str]
    # Kinds whose grade rests on p-values: they are Holm-corrected within the criterion's family.
    tested: ClassVar[bool] = False

    id: Ident
    hypothesis: Ident = Field(description="id of the hypothesis this criterion tests")
    description: str = ""
    exploratory: bool = Field(False, description=(
        "not a test of a stated hypothesis: graded and reported as exploratory, and Holm-corrected apart from the "
        "confirmatory criteria (family 'exploratory' unless `family` names one)"))
    family: Ident | None = Field(None, description=(
        "Holm family of this criterion's tests (kinds with a test only): the tests of the criteria naming the same "
        "family are corrected together; default 'confirmatory' ('exploratory' for an exploratory criterion)"))

    @model_validator(mode="after")
    def _finite_threshold(self):
        # A NaN threshold makes every comparison false: the criterion could never pass.
        threshold = getattr(self, "threshold", None)
        if isinstance(threshold, (int, float)) and not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold}")
        return self

    @model_validator(mode="after")
    def _family_needs_a_test(self):
        if self.family is not None and not self.tested:
            tested = ", ".join(sorted(kind for kind, model in CRITERIA.items() if model.tested))
            raise ValueError(f"family groups tests for Holm correction; {self.kind} has no test (kinds with one: "
                             f"{tested})")
        return self

    def holm_family(self) -> str | None:
        """The Holm family this criterion's tests are corrected in; None for kinds without a test."""
        if not self.tested:
            return None
        return self.family or ("exploratory" if self.exploratory else "confirmatory")


class _EvalCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "eval"
    runs: Literal["all"] | list[Ident] = Field(
        "all", description="run ids (or sweep ids, meaning all their runs) whose results this criterion reads")


class SeedCV(_EvalCriterion):
    """Coefficient of variation (std/mean, ddof=1) of a metric across seeds (disjoint data), with a chi-square
    confidence interval on the standard deviation; the worst run is graded, and passes only when its CI does."""

    kind: Literal["seed_cv"]
    metric: EvalMetric = "ppl"
    comparator: Comparator = "<"
    threshold: float = 0.05


class Finite(_EvalCriterion):
    """Fraction of (run, seed) results whose metric is finite and whose evaluation did not diverge."""

    kind: Literal["finite"]
    metric: EvalMetric = "ppl"
    comparator: Comparator = "=="
    threshold: float = 1.0


class PplSanity(_EvalCriterion):
    """Worst-case PPL as a fraction of the vocabulary size (a uniform guess scores 1.0).

    A PPL below ``suspicious_below`` fails as suspicious: on real text a PPL below ~3 signals leakage or
    repeated data.
    """

    kind: Literal["ppl_sanity"]
    comparator: Comparator = "<"
    threshold: float = 0.1
    suspicious_below: float = 3.0


class MetricBound(_EvalCriterion):
    """An aggregate (max, min, mean) of a metric over the selected runs' seeds against a threshold."""

    kind: Literal["metric_bound"]
    metric: EvalMetric = "ppl"
    aggregate: Literal["max", "min", "mean"] = "max"
    comparator: Comparator
    threshold: float


class _ScoreCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "score"
    run: Ident = Field(description="id of a score run (or a sweep that generated exactly one)")
    metric: MetricName
    mode: Mode = "per_layer"
    k: int | None = Field(None, gt=0, description="top-k size; default the run's topk")


class JaccardStability(_ScoreCriterion):
    """Mean pairwise Jaccard of the top-k sets across the run's seeds (bootstrap CI over seeds)."""

    kind: Literal["jaccard_stability"]
    comparator: Comparator = ">"
    threshold: float = 0.4


class MetricRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: Ident
    metric: MetricName


class MetricOverlap(_CriterionBase):
    """Agreement of two metrics' top-k sets, same seed, averaged over the seeds both runs share."""

    run_kind: ClassVar[str] = "score"

    kind: Literal["metric_overlap"]
    a: MetricRef
    b: MetricRef
    mode: Mode = "per_layer"
    k: int | None = Field(None, gt=0)
    measure: Literal["jaccard", "overlap_coefficient"] = "jaccard"
    comparator: Comparator = ">"
    threshold: float = 0.6


class StabilityDifference(_CriterionBase):
    """Mean pairwise top-k Jaccard across seeds of metric ``a`` minus that of metric ``b`` (same mode and k; the same
    or different score runs), e.g. "act_mag is less stable than grad_x_weight". CI: percentile bootstrap over seeds as
    in ``jaccard_stability``, one draw of seeds for both sides when they have the same seeds (paired), independent
    draws otherwise."""

    run_kind: ClassVar[str] = "score"

    kind: Literal["stability_difference"]
    a: MetricRef
    b: MetricRef
    mode: Mode = "per_layer"
    k: int | None = Field(None, gt=0, description="top-k size; default the smaller topk of the two runs")
    comparator: Comparator = ">"
    threshold: float = 0.0


class TailRatio(_ScoreCriterion):
    """Tail excess over a null with no structure: per matrix, mean(top 1%)/median of the scores divided by the
    same statistic of |w|^p · (the data factor shuffled within the matrix); value = median over matrices (mean
    over seeds), CI by bootstrap over matrices. 1 means "no heavier than chance"."""

    kind: Literal["tail_ratio"]
    comparator: Comparator = ">"
    threshold: float = 2.0


class Hotspot(_ScoreCriterion):
    """Enrichment of the most over-represented layer or component in the global top-k: its share of the
    selected weights over its share of the parameters (mean over seeds, CI over seeds). Graded against the larger
    of the threshold and the 95th percentile the same statistic reaches when the k weights are drawn at random
    in proportion to parameter counts (no structure)."""

    kind: Literal["hotspot"]
    mode: Literal["global"] = "global"
    by: Literal["layer", "component"] = "component"
    comparator: Comparator = ">"
    threshold: float = 2.0


class AblationSpearman(_CriterionBase):
    """Spearman ρ between a metric's score and the real held-out ΔNLL of zeroing single weights (mean over seeds)."""

    run_kind: ClassVar[str] = "ablation_check"

    kind: Literal["ablation_spearman"]
    run: Ident = Field(description="id of an ablation_check run")
    metric: MetricName
    source: Literal["calibration", "evaluation"] = Field(
        "calibration", description="scores computed on calibration text (transfer) or on the evaluation text")
    comparator: Comparator = ">"
    threshold: float = 0.5


class _PerturbCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "perturb"
    run: Ident = Field(description="id of a perturb run")
    level: float | None = Field(None, description="perturbation level (default: the run's first)")


class Ratio(_PerturbCriterion):
    """ΔPPL(super) / ΔPPL(control), paired bootstrap CI resampling evaluation documents; value = median over
    seeds, CI = the envelope of the seeds' CIs (pass only when it clears the threshold)."""

    kind: Literal["ratio"]
    control: Control = "random_k"
    comparator: Comparator = ">="
    threshold: float = 5.0


class Hierarchy(_PerturbCriterion):
    """ΔPPL orders super > random_k > bottom_k: value 1 when every step's difference has a CI above 0 in every
    seed, 0 when some step is reversed (CI below 0 and the reverse Wilcoxon Holm-significant in the criterion's
    family), inconclusive otherwise."""

    tested: ClassVar[bool] = True  # a reversal must be Holm-significant in its family
    kind: Literal["hierarchy"]
    comparator: Comparator = "=="
    threshold: float = 1.0


class Significance(_PerturbCriterion):
    """Paired Wilcoxon of per-document ΔNLL (super > control), Holm-corrected across the distinct tests of the
    criteria in its family; value = the largest corrected p over seeds. Fails when the effect is significant the
    other way."""

    tested: ClassVar[bool] = True
    kind: Literal["significance"]
    control: Control = "random_k"
    comparator: Comparator = "<"
    threshold: float = 0.01


class Monotonic(_PerturbCriterion):
    """Spearman ρ of ΔPPL(target) against the run's levels (dose-response, common random numbers), with a CI
    from resampling evaluation documents."""

    kind: Literal["monotonic"]
    target: Target = "super"
    comparator: Comparator = ">="
    threshold: float = 0.9


class MinEffect(_PerturbCriterion):
    """Mean over seeds of ΔPPL(target) at the level, with a CI from resampling evaluation documents."""

    kind: Literal["min_effect"]
    target: Target = "super"
    comparator: Comparator = ">="
    threshold: float = 0.1


class PplFactor(_PerturbCriterion):
    """PPL(target) / PPL(unperturbed baseline) on the same windows, e.g. "zeroing the super weight at least doubles
    PPL"; a CI resampling evaluation documents (both PPLs on each resample); value = median over seeds, CI = the
    envelope of the seeds' CIs. A diverged model is the largest possible factor."""

    kind: Literal["ppl_factor"]
    target: Target = "super"
    comparator: Comparator = ">="
    threshold: float = 2.0


class NegligibleEffect(_PerturbCriterion):
    """|PPL(target) / PPL(baseline) − 1|, e.g. "zeroing as many random weights changes PPL by < 1%", with a CI
    resampling evaluation documents: passes only when every seed's CI of the relative change lies inside
    (−threshold, threshold), fails when every seed's lies wholly outside; value = median over seeds. A diverged
    model is the largest possible change."""

    kind: Literal["negligible_effect"]
    target: Target = "random_k"
    comparator: Literal["<", "<="] = "<"
    threshold: float = Field(0.01, gt=0)


class Repeatability(_CriterionBase):
    """The same perturbation measured again on disjoint evaluation documents (the repeat run uses another
    ``eval_fold``): |ΔPPL_a − ΔPPL_b| / mean(ΔPPL_a, ΔPPL_b) of the super set, mean over shared seeds, CI from
    resampling each run's documents. Runs on overlapping windows are a determinism check, not repeatability."""

    run_kind: ClassVar[str] = "perturb"

    kind: Literal["repeatability"]
    run: Ident
    repeat: Ident
    target: Target = "super"
    comparator: Comparator = "<"
    threshold: float = 0.5


class Determinism(_CriterionBase):
    """The same condition run twice with identical settings and windows: the largest |ΔPPL_a − ΔPPL_b| over
    shared conditions (0 on a deterministic backend)."""

    run_kind: ClassVar[str] = "perturb"

    kind: Literal["determinism"]
    run: Ident
    repeat: Ident
    comparator: Comparator = "<="
    threshold: float = 0.0


class EffectDifference(_CriterionBase):
    """Two perturb runs on the same baseline windows (same model, data, protocol, dtype, eval_seed and fold):
    ΔPPL(run) − ΔPPL(against) of a target, or their ratio, per shared seed with a paired document-cluster bootstrap
    CI (one draw of documents for both runs) and a paired Wilcoxon of per-document ΔNLL differences in the
    comparator's direction, Holm-corrected in the criterion's family; value = median over seeds, CI = the envelope
    of the seeds' CIs (as ``ratio`` pools), p = the largest corrected p over seeds."""

    run_kind: ClassVar[str] = "perturb"
    tested: ClassVar[bool] = True

    kind: Literal["effect_difference"]
    run: Ident = Field(description="id of a perturb run: the effect being compared")
    against: Ident = Field(description="id of the perturb run it is compared with, on the same baseline windows")
    target: Target = "super"
    level: float | None = Field(None, description="level of `run` (default: its first)")
    against_level: float | None = Field(None, description="level of `against` (default: its first)")
    measure: Literal["difference", "ratio"] = Field(
        "difference", description="ΔPPL(run) − ΔPPL(against), or ΔPPL(run) / ΔPPL(against)")
    comparator: Comparator = ">"
    threshold: float = 0.0


CRITERION_MODELS = (SeedCV, Finite, PplSanity, MetricBound, JaccardStability, MetricOverlap, StabilityDifference,
                    TailRatio, Hotspot, AblationSpearman, Ratio, Hierarchy, Significance, Monotonic, MinEffect,
                    PplFactor, NegligibleEffect, Repeatability, Determinism, EffectDifference)
# kind → model (each model's `kind` literal), e.g. CRITERIA["ratio"] is Ratio.
CRITERIA: dict[str, type[_CriterionBase]] = {model.model_fields["kind"].annotation.__args__[0]: model
                                             for model in CRITERION_MODELS}
