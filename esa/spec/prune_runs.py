"""Run kind ``prune``: unstructured pruning at a sweep of sparsities, each mask ranked by one method, evaluated on
the held-out windows of the shared Phase-3 baseline (esa.engine.pruning; the stage is stages/prune.py).

Methods that rank by a saved score (wanda by act_mag, grad_x_weight, grad_squared, obd) read a Phase-2 score run's
full score tensors (``save_scores``); magnitude and random need none. An *arm* is a method, or a method with a
protected set kept (``<method>+protected``): the protected weights are a score run's stored top-k (the data-free
super weights, or a metric's critical set) and are never pruned.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from esa.names import PRUNING_GROUPS as GROUPS, PRUNING_METHODS as SAVED_METRIC
from esa.spec.names import MetricName, Mode
from esa.spec.runs import Ident, _RunBase, check_protocol

METHODS = tuple(SAVED_METRIC)
Method = Literal[METHODS]
Group = Literal[GROUPS]
PROTECTED = "+protected"
DENSE = "dense"  # the unpruned model (the shared baseline), a reference arm for criteria


class SavedScores(BaseModel):
    """The score run whose saved tensors rank the weights (read, never rescored)."""

    model_config = ConfigDict(extra="forbid")

    spec: str = Field("specs/phase2.yaml", description="path of the spec holding the score run")
    run: Ident = Field(description="a score run with save_scores on, or a sweep of them (one per model)")


class Protected(BaseModel):
    """Weights no protected arm prunes: the rows of a score run's top-k artifact (same spec as ``scores``)."""

    model_config = ConfigDict(extra="forbid")

    run: Ident = Field(description="score run of the scores' spec whose stored selection is protected")
    metric: MetricName = "superweight"
    mode: Mode = "global"
    k: int | None = Field(None, gt=0, description="rank < k per selection; default every stored weight")
    methods: list[Method] = Field(["magnitude"], min_length=1, description="methods also run with the set kept")


class SharedBaseline:
    """Runs evaluated on the perturb kind's shared baseline (same fields, same folder): one unpruned, untrained
    evaluation per model, data, protocol and fold, whatever reads it."""

    def baseline_dir(self) -> str:
        from esa.spec.runs import PerturbRun

        return PerturbRun.baseline_dir(self)

    def model_slug(self) -> str:
        from esa.spec.runs import PerturbRun

        return PerturbRun.model_slug(self)

    def evaluation(self) -> dict[str, Any]:
        from esa.spec.runs import PerturbRun

        return PerturbRun.evaluation(self)


def arm_name(method: str, protected: bool) -> str:
    return method + (PROTECTED if protected else "")


def parse_arm(arm: str) -> tuple[str, bool]:
    """'wanda' → ('wanda', False); 'magnitude+protected' → ('magnitude', True)."""
    method, protected = (arm[: -len(PROTECTED)], True) if arm.endswith(PROTECTED) else (arm, False)
    if method not in METHODS and arm != DENSE:
        raise ValueError(f"unknown pruning arm '{arm}': a method ({', '.join(METHODS)}), a method followed by "
                         f"'{PROTECTED}', or '{DENSE}'")
    return method, protected


class PruneRun(SharedBaseline, _RunBase):
    """Prune every scored matrix to each sparsity with each method; evaluate on the shared baseline's windows.

    Seed i reads the saved scores of scoring seed i (so seeds resample the calibration data) and draws its own
    random masks; magnitude masks are the same for every seed. The cached model is never written: each condition
    is pruned in place, evaluated and restored bit-exactly (checked by checksum).
    """

    kind: Literal["prune"]
    scores: SavedScores
    methods: list[Method] = Field(list(METHODS), min_length=1)
    sparsities: list[float] = Field([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], min_length=1)
    groups: list[Group] = Field(["row"], min_length=1, description=(
        "comparison groups: row (each output row keeps its share, as Wanda compares) or matrix"))
    protect: Protected | None = None
    protocol: str = "standard"
    eval_seed: int = Field(1337, description="seed of the evaluation windows shared with the baseline")
    eval_folds: int = Field(2, gt=0, description="document-disjoint parts the evaluation pool is split into")
    eval_fold: int = Field(0, ge=0, description="the part this run evaluates on")

    _protocol = field_validator("protocol")(classmethod(lambda cls, value: check_protocol(value)))

    @field_validator("sparsities")
    @classmethod
    def _sparsities(cls, value: list[float]) -> list[float]:
        for s in value:
            if not 0 <= s < 1:
                raise ValueError(f"sparsity must be a number in [0, 1), got {s!r}")
            if s == 0:
                raise ValueError("sparsity 0 is the dense baseline, which every run already has")
        if len(set(value)) != len(value):
            raise ValueError("sparsities must be distinct")
        return sorted(value)

    @field_validator("methods", "groups")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must be distinct")
        return value

    @model_validator(mode="after")
    def _checks(self):
        if self.eval_fold >= self.eval_folds:
            raise ValueError(f"eval_fold {self.eval_fold} is outside 0..{self.eval_folds - 1}")
        if self.protect is not None:
            extra = sorted(set(self.protect.methods) - set(self.methods))
            if extra:
                raise ValueError(f"protect.methods {extra} are not among the run's methods")
        return self

    def saved_metrics(self) -> list[str]:
        """The score files the methods read (scores/<metric>.safetensors)."""
        return list(dict.fromkeys(m for method in self.methods if (m := SAVED_METRIC[method]) is not None))

    def needs(self, metrics: list[str]) -> str:
        """Which methods rank by these saved metrics (for an error message)."""
        users = [m for m in self.methods if SAVED_METRIC[m] in metrics]
        return f"{', '.join(users)} rank{'s' if len(users) == 1 else ''} by"

    def arms(self) -> list[str]:
        protected = self.protect.methods if self.protect is not None else []
        return [*self.methods, *(arm_name(m, True) for m in protected)]

    def resolved(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "scores", "protect",
                                        "methods", *("revision", "trust_remote_code")})
        data.update(self.evaluation())
        data["methods"] = list(self.methods)
        data["protect"] = None if self.protect is None else self.protect.model_dump(exclude={"run"})
        return data
