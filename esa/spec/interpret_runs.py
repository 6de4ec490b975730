"""Run kind ``interpret``: what the critical weights do inside the model (the stage is stages/interpret.py; the
engine is esa.engine.interpret).

- **Super weight ↔ massive activation.** Each super weight the data-free detector finds: the residual-stream
  dimension it drives and that activation's size layer by layer, on the detector's prompt, with the weight in place
  and zeroed; on held-out windows, what zeroing it does to attention-sink mass (the share of attention on the first
  token) and to PPL.
- **Attention heads.** Critical weights per head in q/k/v/o against each head's attention entropy and sink share.
- **Knowledge localisation.** Cloze probes (Python keywords, builtins, stdlib module names; a fact set for real
  models) with the top-k critical weights of every matrix zeroed, against matched random ablations.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from esa.spec.fault_runs import CriticalSet
from esa.spec.runs import _RunBase, check_protocol

PROBE_CATEGORIES = ("keyword", "builtin", "stdlib", "facts")
ProbeCategory = Literal[PROBE_CATEGORIES]


class InterpretRun(_RunBase):
    """Seed i evaluates on part i of the evaluation split (disjoint windows per seed), reads the critical set of
    scoring seed i, and draws its own random ablations; the probes and the detector's prompt are the same for
    every seed."""

    kind: Literal["interpret"]
    critical: CriticalSet
    probes: list[ProbeCategory] = Field(["keyword", "builtin", "stdlib"], min_length=1)
    ablate_k: int = Field(20, gt=0, description="critical weights zeroed per matrix for the probes (top by rank)")
    n_random: int = Field(5, gt=0, description="matched random ablations per seed")
    superweight_threshold: float = Field(50.0, gt=1, description="the detector's spike ratio (input and output)")
    protocol: str = "standard"
    windows: int = Field(32, gt=0, description="held-out windows per seed for attention and PPL")

    _protocol = field_validator("protocol")(classmethod(lambda cls, value: check_protocol(value)))

    @field_validator("probes")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must be distinct")
        return value

    @model_validator(mode="after")
    def _float32(self):
        if self.dtype != "float32":
            raise ValueError("interpret runs read attention probabilities in float32")
        return self

    def evaluation(self) -> dict[str, Any]:
        from esa.registry import PROTOCOLS

        protocol = PROTOCOLS[self.protocol]
        return {"protocol": self.protocol, "context": protocol.context, "stride": protocol.stride,
                "max_windows": self.windows, "batch_size": protocol.batch_size, "dtype": self.dtype,
                "device": self.device}

    def resolved(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "critical",
                                        "windows", "revision", "trust_remote_code"})
        data.update(self.evaluation())
        data["critical"] = self.critical.model_dump(exclude={"spec", "run"})
        data["seed_plan"] = list(self.seeds)
        return data
