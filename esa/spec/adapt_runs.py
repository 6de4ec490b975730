"""Run kind ``adapt``: continue training copies of a model on a shifted domain (the corpus's instruction pairs) with
the critical set protected or as the only weights trained (esa.engine.adaptation; the stage is stages/adapt.py).

Arms: ``full`` (every weight trains), ``frozen`` (the critical set is held), ``fisher`` (a Fisher-weighted pull of
the critical set towards its start), ``top`` / ``random`` / ``bottom`` (only the top-, random or bottom-ranked
weights of each group train, matched in count), ``lora`` (peft LoRA adapters). The critical set is the top
``fraction`` of each group by ``metric``, read from a Phase-2 score run's saved tensors; the Fisher weights are its
saved grad_squared. Forgetting is measured on the shared Phase-3 baseline's evaluation windows, gain on held-out
instruction pairs from the evaluation split.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from esa.names import PRUNING_GROUPS as GROUPS
from esa.spec.names import MetricName
from esa.spec.prune_runs import SavedScores, SharedBaseline
from esa.spec.runs import _RunBase, check_protocol

ARMS = ("full", "frozen", "fisher", "top", "random", "bottom", "lora")
Arm = Literal[ARMS]
RANKED = ("frozen", "fisher", "top", "bottom")  # arms that need the saved metric


class AdaptRun(SharedBaseline, _RunBase):
    """Train each arm from the same start for the same steps on seed i's part of the instruction pairs (parts are
    document-disjoint), then measure forgetting and gain against the untrained model on fixed held-out data."""

    kind: Literal["adapt"]
    scores: SavedScores
    metric: MetricName = Field("grad_x_weight", description="score that ranks the critical set")
    fraction: float = Field(0.01, gt=0, le=0.5, description="share of each group in the critical set")
    group: Literal[GROUPS] = "row"
    arms: list[Arm] = Field(["full", "frozen", "fisher"], min_length=1)
    steps: int = Field(100, gt=0)
    batch_size: int = Field(8, gt=0)
    learning_rate: float = Field(3e-4, gt=0)
    seq_len: int = Field(256, gt=8, description="longest instruction pair kept (tokens)")
    max_pairs: int = Field(0, ge=0, description="training pairs drawn from the train split (0: all)")
    heldout_pairs: int = Field(128, gt=0, description="held-out pairs from the evaluation split (gain)")
    fisher_strength: float = Field(1.0, ge=0, description="λ of the Fisher penalty (F normalised to mean 1)")
    lora_rank: int = Field(8, gt=0)
    lora_alpha: float = Field(16.0, gt=0)
    protocol: str = "standard"
    eval_seed: int = Field(1337, description="seed of the evaluation windows shared with the baseline")
    eval_folds: int = Field(2, gt=0)
    eval_fold: int = Field(0, ge=0)

    _protocol = field_validator("protocol")(classmethod(lambda cls, value: check_protocol(value)))

    @field_validator("arms")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("arms must be distinct")
        return value

    @model_validator(mode="after")
    def _fold(self):
        if self.eval_fold >= self.eval_folds:
            raise ValueError(f"eval_fold {self.eval_fold} is outside 0..{self.eval_folds - 1}")
        return self

    def saved_metrics(self) -> list[str]:
        metrics = [self.metric] if any(a in RANKED for a in self.arms) else []
        if "fisher" in self.arms:
            metrics.append("grad_squared")
        return list(dict.fromkeys(metrics))

    def needs(self, metrics: list[str]) -> str:
        users = [a for a in self.arms if (a in RANKED and self.metric in metrics)
                 or (a == "fisher" and "grad_squared" in metrics)]
        return f"the {', '.join(users)} arm{'s' if len(users) > 1 else ''} need{'s' if len(users) == 1 else ''}"

    def resolved(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "scores",
                                        "revision", "trust_remote_code"})
        evaluation = self.evaluation()
        evaluation["eval_batch_size"] = evaluation.pop("batch_size")  # batch_size is the training batch
        data.update(evaluation)
        data["seed_plan"] = list(self.seeds)
        return data
