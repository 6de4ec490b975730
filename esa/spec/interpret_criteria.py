"""Criterion kinds on interpret runs (esa.spec.interpret_runs): what zeroing a super weight does, whether critical
weights per head go with how the head attends, and whether zeroing the critical set breaks a probe category more
than zeroing as many random weights."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from esa.spec.criteria import Comparator, Ident, _CriterionBase
from esa.spec.interpret_runs import ProbeCategory

MEASURE_DEFAULTS = {"ppl_ratio": (">", 1.0), "sink_shift": ("<", 0.0)}


class _InterpretCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "interpret"
    run: Ident = Field(description="id of an interpret run")


class SuperweightEffect(_InterpretCriterion):
    """What zeroing a detected super weight does on held-out windows: ``ppl_ratio`` = PPL(zeroed) / PPL(model),
    or ``sink_shift`` = the mean change of attention-sink mass over the layers after the weight's (default
    ``< 0``: zeroing it lowers the attention on the first token). Each seed's 95% CI resamples documents; graded on
    the envelope over seeds and over the super weights named (``weight``: one, by detector order; default all)."""

    kind: Literal["superweight_effect"]
    measure: Literal["ppl_ratio", "sink_shift"] = "ppl_ratio"
    weight: int | None = Field(None, ge=0, description="which detected super weight (0 = the first); default all")
    comparator: Comparator | None = None
    threshold: float | None = None

    @model_validator(mode="after")
    def _defaults(self):
        comparator, threshold = MEASURE_DEFAULTS[self.measure]
        self.comparator = self.comparator or comparator
        self.threshold = threshold if self.threshold is None else self.threshold
        return self


class HeadCorrelation(_InterpretCriterion):
    """Spearman's rho across attention heads between critical weights per head (``count``: q, k, v, o or their
    total) and the head's attention ``stat`` (entropy or sink share), each seed's 95% CI resampling whole layers of
    heads; graded on the envelope over seeds. Under no structure rho is 0."""

    kind: Literal["head_correlation"]
    count: Literal["total", "q", "k", "v", "o"] = "total"
    stat: Literal["entropy", "sink_share"] = "entropy"
    comparator: Comparator = ">"
    threshold: float = Field(0.0, ge=-1, le=1)


class ProbeDrop(_InterpretCriterion):
    """A probe measure with matched random weights zeroed (mean over draws) minus the same with the critical set
    zeroed, for one category, paired by item: top-1 ``accuracy``, or the answer's ``logprob`` (nats; it still moves
    when a small model rarely gets the answer top-1). Each seed's 95% CI resamples items; graded on the envelope
    over seeds. Above 0: the critical weights hold more of that knowledge than weights with no structure."""

    kind: Literal["probe_drop"]
    category: ProbeCategory
    measure: Literal["accuracy", "logprob"] = "accuracy"
    comparator: Comparator = ">"
    threshold: float = 0.0


def check_interpret_criterion(spec, criterion, path: tuple) -> list[tuple[tuple, str]]:
    run = spec.run(criterion.run)
    if criterion.kind == "probe_drop" and criterion.category not in run.probes:
        return [(path + ("category",), f"run '{run.id}' does not probe {criterion.category} (probes: "
                                       f"{', '.join(run.probes)})")]
    return []


INTERPRET_CRITERION_MODELS = (SuperweightEffect, HeadCorrelation, ProbeDrop)
