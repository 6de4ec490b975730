"""Run kind ``faults``: random bit errors in the stored weights at a sweep of rates (fault tolerance, with and
without the critical set protected as ECC would protect it) and a progressive bit-flip attack (flips to collapse for
an unrestricted attacker, one kept off the critical set, and random flips). The stage is stages/faults.py; the
engine is esa.engine.faults.

Weights are stored as fp32, bf16, or int8 after symmetric per-row quantisation; the forward pass computes with
their decoded values. A trial or an attack step *collapses* when the evaluation diverges or its PPL exceeds
``collapse_factor`` × the baseline PPL of the same storage format, on a small fixed set of held-out windows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from esa.spec.names import MetricName, Mode
from esa.spec.runs import Ident, _RunBase, check_protocol

FORMATS = ("fp32", "bf16", "int8")
FAULT_ARMS = ("none", "critical", "random")  # nothing exempt, the critical set exempt, a matched random set exempt
ATTACK_ARMS = ("unrestricted", "noncritical", "random")
Format = Literal[FORMATS]
FaultArm = Literal[FAULT_ARMS]
AttackArm = Literal[ATTACK_ARMS]


class CriticalSet(BaseModel):
    """The critical set: the rows of a score run's stored top-k (``topk.parquet``)."""

    model_config = ConfigDict(extra="forbid")

    spec: str = Field("specs/phase2.yaml", description="path of the spec holding the score run")
    run: Ident = Field(description="score run whose stored selection is the critical set")
    metric: MetricName = "grad_x_weight"
    mode: Mode = "global"
    k: int | None = Field(None, gt=0, description="rank < k per selection; default every stored weight")


class Attack(BaseModel):
    """A progressive bit search against the loss on attack windows (calibration split, disjoint per seed)."""

    model_config = ConfigDict(extra="forbid")

    formats: list[Format] = Field(["int8"], min_length=1)
    arms: list[AttackArm] = Field(list(ATTACK_ARMS), min_length=1)
    budget: int = Field(20, gt=0, le=1000, description="flips an attacker may make; not collapsed by then: censored")
    shortlist: int = Field(8, gt=0, description="best first-order candidates whose real loss is measured per step")
    windows: int = Field(4, gt=0, description="attack windows (from the calibration split)")


class FaultRun(_RunBase):
    """Bit errors in the stored weights: ``trials`` independent draws per (format, rate, arm) and seed, judged on
    the same held-out windows; an optional progressive attack per seed. Seeds draw independent errors and disjoint
    attack windows."""

    kind: Literal["faults"]
    critical: CriticalSet
    formats: list[Format] = Field(list(FORMATS), min_length=1)
    rates: list[float] = Field([1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4], min_length=1,
                               description="bit-error rates per stored bit")
    arms: list[FaultArm] = Field(list(FAULT_ARMS), min_length=1)
    trials: int = Field(20, gt=0, description="independent draws per (format, rate, arm) and seed")
    collapse_factor: float = Field(10.0, gt=1, description="collapse: PPL above this × the format's baseline")
    attack: Attack | None = None
    protocol: str = "standard"
    windows: int = Field(16, gt=0, description="held-out windows every trial is evaluated on")
    eval_seed: int = Field(1337, description="seed of the evaluation windows")
    eval_folds: int = Field(2, gt=0, description="document-disjoint parts the evaluation pool is split into")
    eval_fold: int = Field(0, ge=0, description="the part this run evaluates on")

    _protocol = field_validator("protocol")(classmethod(lambda cls, value: check_protocol(value)))

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: list[float]) -> list[float]:
        for rate in value:
            if not 0 < rate < 1:
                raise ValueError(f"a bit-error rate is a number in (0, 1), got {rate!r}")
        if len(set(value)) != len(value):
            raise ValueError("rates must be distinct")
        return sorted(value)

    @field_validator("formats", "arms")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must be distinct")
        return value

    @model_validator(mode="after")
    def _checks(self):
        if self.eval_fold >= self.eval_folds:
            raise ValueError(f"eval_fold {self.eval_fold} is outside 0..{self.eval_folds - 1}")
        if self.dtype != "float32":
            raise ValueError("faults runs load the model in float32 and store its weights in `formats`")
        return self

    def attack_arms(self) -> list[str]:
        return list(self.attack.arms) if self.attack is not None else []

    def evaluation(self) -> dict[str, Any]:
        from esa.registry import PROTOCOLS

        protocol = PROTOCOLS[self.protocol]
        return {"protocol": self.protocol, "context": protocol.context, "stride": protocol.stride,
                "max_windows": self.windows, "batch_size": protocol.batch_size, "dtype": self.dtype,
                "device": self.device, "folds": self.eval_folds, "fold": self.eval_fold}

    def resolved(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "critical",
                                        "windows", "revision", "trust_remote_code"})
        data.update(self.evaluation())
        data["critical"] = self.critical.model_dump(exclude={"spec", "run"})
        data["attack_parts"] = len(self.seeds)
        return data
