"""A prune run's conditions on one loaded model: every (group, arm, sparsity) masked, evaluated and restored.

The masks come from ``model_masks`` and are applied by ``pruned`` (bit-exact restore, proved by checksum), and
every condition is evaluated by the Phase-1 evaluator on the same prepared windows, so its per-window NLL pairs
with the shared baseline's. The sparsity each matrix actually reached is counted while it is pruned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import pandas as pd
import torch

from esa.engine.pruning.apply import achieved_sparsity, pruned
from esa.engine.pruning.masks import SAVED_METRIC
from esa.engine.pruning.model_masks import Positions, model_masks

CONDITION_COLUMNS = ["arm", "method", "protected", "group", "sparsity"]


@dataclass(frozen=True)
class Condition:
    method: str
    protected: bool
    group: str
    sparsity: float

    @property
    def arm(self) -> str:
        return self.method + ("+protected" if self.protected else "")

    def labels(self) -> dict:
        return {"arm": self.arm, "method": self.method, "protected": self.protected, "group": self.group,
                "sparsity": self.sparsity}


def conditions(methods: Sequence[str], sparsities: Sequence[float], groups: Sequence[str],
               protected_methods: Sequence[str] = ()) -> list[Condition]:
    """Group-major, then arm, then sparsity: masks of one method are built while its scores are loaded."""
    arms = [(m, False) for m in methods] + [(m, True) for m in protected_methods]
    return [Condition(m, p, g, float(s)) for g in groups for m, p in arms for s in sparsities]


def protected_positions(topk: pd.DataFrame, *, metric: str, mode: str, k: int | None) -> dict[str, Positions]:
    """Target key → (row, col) of a score run's stored selection (rank < k when given; every stored row else)."""
    rows = topk[(topk["metric"] == metric) & (topk["mode"] == mode)]
    if k is not None:
        rows = rows[rows["rank"] < k]
    if rows.empty:
        raise ValueError(f"the top-k artifact stores no {metric} weights in {mode} mode to protect")
    out: dict[str, list[tuple[int, int]]] = {}
    for row in rows.itertuples(index=False):
        key = row.tensor if pd.isna(row.expert) else f"{row.tensor}[{int(row.expert)}]"
        out.setdefault(key, []).append((int(row.row), int(row.col)))
    return out


def _target_count(model: torch.nn.Module, condition: Condition) -> int:
    """Weights the condition should prune: the exact count of every group of every scored matrix. A protected arm
    falls short of it only where a group holds more protected weights than it may keep (``short="cap"``)."""
    from esa.engine.models.targets import scored_parameters
    from esa.engine.pruning.masks import pruned_count

    total = 0
    for target in scored_parameters(model):
        rows, cols = target.shape
        total += rows * pruned_count(condition.sparsity, cols) if condition.group == "row" else \
            pruned_count(condition.sparsity, rows * cols)
    return total


@dataclass
class ConditionResults:
    frames: list[pd.DataFrame] = field(default_factory=list)  # per-window NLL, one frame per condition
    sparsity: list[pd.DataFrame] = field(default_factory=list)  # per-matrix achieved sparsity per condition
    summary: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # arm → masks + apply/restore + evaluation

    def add_time(self, arm: str, what: str, seconds: float) -> None:
        self.seconds[f"{arm}/{what}"] = self.seconds.get(f"{arm}/{what}", 0.0) + seconds


def run_conditions(model: torch.nn.Module, todo: Sequence[Condition], *,
                   evaluate: Callable[[torch.nn.Module], pd.DataFrame],
                   saved_scores: Callable[[str], Mapping[str, torch.Tensor] | None], seed: int,
                   protected: Mapping[str, Positions] | None = None, reference=None,
                   report: Callable[[str], None] = print) -> ConditionResults:
    """Mask, prune, evaluate and restore each condition in turn; the model ends as it started.

    ``evaluate(model)`` returns the per-window frame; ``saved_scores(metric)`` the parameter-shaped tensors of a
    saved metric (called once per metric in a row of conditions that need it).
    """
    import numpy as np

    results, loaded = ConditionResults(), {}
    for condition in todo:
        metric = SAVED_METRIC[condition.method]
        if metric is not None and metric not in loaded:
            loaded = {metric: saved_scores(metric)}  # one metric's tensors in memory at a time
        start = time.perf_counter()
        masks = model_masks(model, condition.method, condition.sparsity, condition.group,
                            saved_scores=loaded.get(metric), seed=seed,
                            protected=protected if condition.protected else None, short="cap")
        masked_at = time.perf_counter()
        with pruned(model, masks, reference=reference) as pruning:
            applied_at = time.perf_counter()
            frame = evaluate(model)
            evaluated_at = time.perf_counter()
            reached = achieved_sparsity(model)
        results.add_time(condition.arm, "masks", masked_at - start)
        results.add_time(condition.arm, "apply_restore", applied_at - masked_at + time.perf_counter() - evaluated_at)
        results.add_time(condition.arm, "evaluate", evaluated_at - applied_at)
        diverged = not np.isfinite(frame["nll_sum"].to_numpy()).all()
        results.frames.append(frame.assign(**condition.labels(), diverged=diverged))
        results.sparsity.append(reached.assign(**condition.labels()))
        total = int(reached["n"].sum())
        target = _target_count(model, condition)
        summary = {**condition.labels(), "n_pruned": pruning.n_pruned, "n_target": target,
                   "shortfall": target - pruning.n_pruned, "n_scored": total,
                   "achieved": float(reached["zeros"].sum() / total),
                   "min_matrix": float(reached["fraction"].min()), "max_matrix": float(reached["fraction"].max()),
                   "status": "diverged" if diverged else "ok"}
        results.summary.append(summary)
        short = f" ({summary['shortfall']} fewer than the count: protected weights kept)" if summary["shortfall"] else ""
        report(f"prune {condition.arm} {condition.group} {condition.sparsity:g}: "
               f"{summary['achieved']:.3f} of scored weights zero{short}, {summary['status']}")
    return results


__all__ = ["CONDITION_COLUMNS", "Condition", "ConditionResults", "conditions", "protected_positions",
           "run_conditions"]
