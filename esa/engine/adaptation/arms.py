"""One training arm of an adapt run: what may change (masks, a penalty, LoRA adapters), trained by ``adapt``.

Every arm starts from the same model, trains for the same steps on the same batches (one seed) and returns a
trained copy; the model it is given is never written. The critical set is the top ``fraction`` of each group by the
saved metric; ``top``, ``random`` and ``bottom`` select the same count per group, so they differ only in which
weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from esa.engine.adaptation.lora import lora_model, lora_parameter_count, merged
from esa.engine.adaptation.penalty import Penalty
from esa.engine.adaptation.selection import critical_masks
from esa.engine.adaptation.training import AdaptResult, LossFn, adapt

ARMS = ("full", "frozen", "fisher", "top", "random", "bottom", "lora")


@dataclass(frozen=True)
class ArmPlan:
    """What every arm of a run shares."""

    steps: int
    batch_size: int
    learning_rate: float
    seed: int
    fraction: float
    group: str
    fisher_strength: float = 1.0
    lora_rank: int = 8
    lora_alpha: float = 16.0


def train_arm(model: torch.nn.Module, arm: str, loss_of: LossFn, n_items: int, plan: ArmPlan,
              scores: Mapping[str, torch.Tensor] | None = None,
              fisher: Mapping[str, torch.Tensor] | None = None) -> AdaptResult:
    """Train ``arm`` on a copy of ``model``; ``scores`` rank the critical set, ``fisher`` weights the penalty."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
    common = dict(n_items=n_items, steps=plan.steps, batch_size=plan.batch_size, learning_rate=plan.learning_rate,
                  seed=plan.seed, desc=f"adapt {arm}")
    if arm == "full":
        return adapt(model, loss_of, **common)
    if arm == "lora":
        wrapped = lora_model(model, rank=plan.lora_rank, alpha=plan.lora_alpha)
        result = adapt(wrapped, loss_of, **common)
        result.n_trainable = lora_parameter_count(result.model)
        result.model = merged(result.model)
        return result
    if arm == "random":
        return adapt(model, loss_of, trainable=critical_masks(model, "random", plan.fraction, plan.group,
                                                              seed=plan.seed), **common)
    if scores is None:
        raise ValueError(f"the {arm} arm ranks weights by a saved score; none was given")
    which = "bottom" if arm == "bottom" else "top"
    masks = critical_masks(model, which, plan.fraction, plan.group, scores)
    if arm == "frozen":
        return adapt(model, loss_of, frozen=masks, **common)
    if arm == "fisher":
        if fisher is None:
            raise ValueError("the fisher arm weights its penalty by the saved grad_squared scores; none were given")
        return adapt(model, loss_of, penalty=Penalty(masks, fisher, plan.fisher_strength), **common)
    return adapt(model, loss_of, trainable=masks, **common)


__all__ = ["ARMS", "ArmPlan", "train_arm"]
