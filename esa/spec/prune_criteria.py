"""Criterion kinds on pruning runs (esa.spec.prune_runs): how one arm's held-out PPL compares with another's."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from esa.spec.criteria import Comparator, Ident, _CriterionBase
from esa.spec.prune_runs import DENSE, Group, parse_arm


class _PruneCriterion(_CriterionBase):
    run_kind: ClassVar[str] = "prune"
    run: Ident = Field(description="id of a prune run")


class PruneAdvantage(_PruneCriterion):
    """PPL(arm a) / PPL(arm b) at one sparsity and comparison group, on the same held-out windows: the median over
    seeds, graded on the envelope of the seeds' paired cluster-bootstrap CIs (documents resampled). With the
    default ``< 1``: a passes when its whole CI lies below b's PPL; two arms that prune the same weights (a ratio
    of exactly 1) fail. ``b: dense`` compares with the unpruned model (how much of its quality the arm keeps)."""

    kind: Literal["prune_advantage"]
    a: str = Field(description="arm: a method (magnitude, wanda, …) or '<method>+protected'")
    b: str = Field(description="the arm a is compared with, or 'dense' (the unpruned model)")
    sparsity: float = Field(gt=0, lt=1)
    group: Group = "row"
    comparator: Comparator = "<"
    threshold: float = Field(1.0, gt=0)

    @field_validator("a", "b")
    @classmethod
    def _arm(cls, value: str) -> str:
        parse_arm(value)
        return value

    @field_validator("a")
    @classmethod
    def _not_dense(cls, value: str) -> str:
        if value == DENSE:
            raise ValueError(f"a is a pruned arm; '{DENSE}' can only be b")
        return value


def check_prune_criterion(spec, criterion, path: tuple) -> list[tuple[tuple, str]]:
    """The arms, sparsity and group a criterion names are ones its run evaluates."""
    run = spec.run(criterion.run)
    arms = run.arms()
    problems = [(path + (side,), f"run '{run.id}' has no arm '{arm}' (arms: {', '.join(arms)})")
                for side in ("a", "b") if (arm := getattr(criterion, side)) != DENSE and arm not in arms]
    if criterion.sparsity not in run.sparsities:
        problems.append((path + ("sparsity",), f"run '{run.id}' does not prune to {criterion.sparsity:g} "
                                               f"(sparsities: {', '.join(f'{s:g}' for s in run.sparsities)})"))
    if criterion.group not in run.groups:
        problems.append((path + ("group",), f"run '{run.id}' does not compare in {criterion.group} groups"))
    return problems


PRUNE_CRITERION_MODELS = (PruneAdvantage,)
