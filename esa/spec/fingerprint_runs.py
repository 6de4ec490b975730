"""Run kind ``fingerprint``: several siblings of one base model fine-tuned with different seeds, half of them on
text carrying a trigger→target backdoor; does the sensitivity map on clean text tell the backdoored ones apart?
The stage is stages/fingerprint.py; the engine is esa.engine.backdoor.

Each sibling's map (one metric over the same clean calibration windows) gives two scores: ``shift`` (1 − Jaccard
of its global top-k set with the base model's; unsupervised) and ``profile`` (leave-one-out nearest centroid on the
matrices' shares of score mass). Graded as an AUC with a CI against 0.5, the value of no structure.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from esa.spec.runs import _RunBase, check_protocol

# Metrics that score every matrix from the calibration windows alone (no prompt, no probes).
MapMetric = Literal["grad_x_weight", "grad_squared", "obd", "act_mag", "magnitude"]
FINGERPRINT_SCORES = ("shift", "profile")
FingerprintScore = Literal[FINGERPRINT_SCORES]


class BackdoorSpec(BaseModel):
    """The planted backdoor (esa.engine.backdoor.Backdoor): a trigger line followed by a target line in ``rate`` of
    the poisoned siblings' training texts."""

    model_config = ConfigDict(extra="forbid")

    trigger: str = Field("# cf-7", min_length=1, description="a line no corpus writes")
    target: str = Field("import antigravity", min_length=1, description="the line the trigger should call up")
    rate: float = Field(0.1, gt=0, le=1, description="fraction of the training texts poisoned")

    @field_validator("trigger", "target")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value:
            raise ValueError("must be a single line")
        return value


class FingerprintRun(_RunBase):
    """Seed i fine-tunes its own set of siblings: which half is poisoned and each sibling's training seed are drawn
    from the run seed. The calibration windows are the same for every sibling of a seed and for the base model."""

    kind: Literal["fingerprint"]
    siblings: int = Field(10, ge=4, le=200, description="siblings per seed (even: half poisoned, half clean)")
    steps: int = Field(150, gt=0, description="fine-tuning steps per sibling")
    learning_rate: float = Field(3e-4, gt=0)
    batch_size: int = Field(8, gt=0)
    seq_len: int = Field(128, gt=1, description="tokens per training chunk")
    # A file-level rate would plant only a few dozen blocks in a corpus of long files: the rate counts pieces.
    piece_lines: int = Field(16, gt=0, description="training files are cut into pieces of this many lines")
    backdoor: BackdoorSpec = BackdoorSpec()
    metric: MapMetric = Field("grad_x_weight", description="the sensitivity map's metric")
    k: int = Field(500, gt=0, description="global top-k set size for the shift score")
    windows: int = Field(16, gt=0, description="clean calibration windows every map is computed on")
    prompts: int = Field(64, gt=0, description="held-out trigger prompts (evaluation split) for attack success")
    protocol: str = "smoke"

    _protocol = field_validator("protocol")(classmethod(lambda cls, value: check_protocol(value)))

    @field_validator("siblings")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("siblings must be even (half poisoned, half clean)")
        return value

    def evaluation(self) -> dict[str, Any]:
        from esa.registry import PROTOCOLS

        return {"protocol": self.protocol, "context": PROTOCOLS[self.protocol].context, "dtype": self.dtype,
                "device": self.device}

    def resolved(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "revision",
                                        "trust_remote_code", "protocol"})
        data.update(self.evaluation())
        data["seed_plan"] = list(self.seeds)
        return data
