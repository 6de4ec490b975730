"""The attack arms a faults run compares, one row per flip: an unrestricted progressive bit search, the same search
kept off the critical set, and random flips (the control), each judged after every flip on held-out windows."""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch

from esa.engine.faults.attack import AttackResult, progressive_bit_attack, random_bit_attack
from esa.engine.faults.storage import StoredWeights


def judge_for(evaluate: Callable[[], float], baseline_ppl: float, collapse_factor: float):
    """(PPL, collapsed): collapsed when the loss is not finite or PPL exceeds the factor × the baseline."""
    limit = collapse_factor * baseline_ppl

    def judge() -> tuple[float, bool]:
        value = evaluate()
        return value, (not math.isfinite(value)) or value > limit

    return judge


def run_attacks(stored: StoredWeights, loss_fn: Callable[[], torch.Tensor], evaluate: Callable[[], float], *,
                baseline_ppl: float, collapse_factor: float, arms: list[str], budget: int, shortlist: int,
                critical: Mapping[str, torch.Tensor], seed: int) -> list[dict]:
    """Every arm from the same stored model (each attack restores it); rows carry the arm and the step (1-based)."""
    judge = judge_for(evaluate, baseline_ppl, collapse_factor)
    rows = []
    for arm in arms:
        if arm == "random":
            result = random_bit_attack(stored, judge, budget=budget, generator=torch.Generator().manual_seed(seed),
                                       loss_fn=loss_fn, arm=arm)
        else:
            result = progressive_bit_attack(stored, loss_fn, judge, budget=budget, shortlist=shortlist, arm=arm,
                                            exempt=critical if arm == "noncritical" else None)
        rows.extend(attack_rows(result, arm=arm, fmt=stored.format, seed=seed, baseline_ppl=baseline_ppl))
    return rows


def attack_rows(result: AttackResult, *, arm: str, fmt: str, seed: int, baseline_ppl: float) -> list[dict]:
    return [{"seed": seed, "format": fmt, "arm": arm, "step": step, "key": flip.key, "index": int(flip.index),
             "bit": int(flip.bit), "old_value": float(flip.old_value), "new_value": float(flip.new_value),
             "loss": math.nan if flip.loss is None else float(flip.loss),
             "estimate": math.nan if flip.estimate is None else float(flip.estimate), "ppl": float(flip.metric) if flip.metric is not None else math.nan,
             "collapsed": bool(flip.collapsed), "budget": result.budget, "baseline_ppl": baseline_ppl}
            for step, flip in enumerate(result.flips, start=1)]


__all__ = ["attack_rows", "judge_for", "run_attacks"]
