"""Criterion kinds on faults runs (esa.spec.fault_runs): what protecting the critical set buys against random bit
errors, and how many flips an attacker needs."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from esa.spec.criteria import Comparator, Ident, _CriterionBase
from esa.spec.fault_runs import AttackArm, FaultArm, Format


class _FaultCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "faults"
    run: Ident = Field(description="id of a faults run")
    format: Format = Field("fp32", description="storage format: fp32, bf16 or int8")


class ProtectionGain(_FaultCriterion):
    """Collapse rate of arm a minus that of arm b at one bit-error rate, all seeds' trials pooled (independent
    draws), with Newcombe's hybrid-score CI for a difference of independent proportions (statsmodels). With the
    defaults (a: random, b: critical, ``> 0``) it passes when exempting the critical set prevents more collapses
    than exempting as many random weights, the protection a set with no structure gives."""

    kind: Literal["protection_gain"]
    rate: float = Field(gt=0, lt=1, description="the bit-error rate compared (one of the run's rates)")
    a: FaultArm = "random"
    b: FaultArm = "critical"
    comparator: Comparator = ">"
    threshold: float = 0.0

    @model_validator(mode="after")
    def _two_arms(self):
        if self.a == self.b:
            raise ValueError("a and b must be different arms")
        return self


class FlipsToCollapse(_FaultCriterion):
    """Flips until the model collapses for attack arm a (or that count over arm b's), one value per seed; an attack
    that did not collapse within its budget counts as more than the budget (right-censored). Graded on the
    envelope of the seeds' values and bounds: pass only when every seed clears the threshold."""

    kind: Literal["flips_to_collapse"]
    format: Format = "int8"
    a: AttackArm = "unrestricted"
    b: AttackArm | None = Field(None, description="a second arm: grade flips(a) / flips(b) instead")
    comparator: Comparator = "<="
    threshold: float = Field(gt=0)

    @model_validator(mode="after")
    def _two_arms(self):
        if self.a == self.b:
            raise ValueError("a and b must be different arms")
        return self


def check_fault_criterion(spec, criterion, path: tuple) -> list[tuple[tuple, str]]:
    """The format, rate and arms a criterion names are ones its run measures."""
    run = spec.run(criterion.run)
    problems = []
    if criterion.kind == "protection_gain":
        if criterion.format not in run.formats:
            problems.append((path + ("format",), f"run '{run.id}' does not store weights as {criterion.format}"))
        if criterion.rate not in run.rates:
            problems.append((path + ("rate",), f"run '{run.id}' has no rate {criterion.rate:g} (rates: "
                                               f"{', '.join(f'{r:g}' for r in run.rates)})"))
        problems += [(path + (side,), f"run '{run.id}' has no arm '{arm}' (arms: {', '.join(run.arms)})")
                     for side in ("a", "b") if (arm := getattr(criterion, side)) not in run.arms]
        return problems
    if run.attack is None:
        return [(path + ("run",), f"run '{run.id}' has no attack")]
    if criterion.format not in run.attack.formats:
        problems.append((path + ("format",), f"run '{run.id}' attacks no {criterion.format} weights (formats: "
                                             f"{', '.join(run.attack.formats)})"))
    problems += [(path + (side,), f"run '{run.id}' has no attack arm '{arm}' (arms: {', '.join(run.attack_arms())})")
                 for side in ("a", "b") if (arm := getattr(criterion, side)) is not None
                 and arm not in run.attack_arms()]
    return problems


FAULT_CRITERION_MODELS = (ProtectionGain, FlipsToCollapse)
