"""Fault-tolerance trials: many independent draws of random bit errors per rate, each evaluated and judged
collapsed or not, with and without a protected (ECC-exempt) set.

Every trial draws from its own generator, seeded from (seed, format, rate, trial, arm), so trials are independent
and any one of them can be replayed alone. A trial whose draw has no flip is the unchanged model: it is recorded
with the baseline's PPL without evaluating again. A trial collapses when its evaluation diverges (a non-finite
loss) or its PPL exceeds ``collapse_factor`` × the baseline of the same storage format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
from tqdm import tqdm

from esa.engine.faults.bit_errors import bit_errors, draw_bit_errors
from esa.engine.faults.storage import FORMATS, StoredWeights

Positions = Mapping[str, list[tuple[int, int]]]
ARMS = ("none", "critical", "random")  # no protection, the critical set exempt, as many random weights exempt


def trial_seed(seed: int, fmt: str, rate_index: int, trial: int, arm: str) -> int:
    """A generator seed of its own for every trial (numpy's SeedSequence mixes the parts)."""
    parts = [seed, FORMATS.index(fmt), rate_index, trial, ARMS.index(arm)]
    return int(np.random.SeedSequence(parts).generate_state(1, dtype=np.uint64)[0] >> 1)


def critical_masks(stored: StoredWeights, positions: Positions) -> dict[str, torch.Tensor]:
    """Target key → bool mask of the critical weights (the protected set)."""
    masks = {}
    for key, cells in positions.items():
        if key not in stored.targets:
            raise KeyError(f"the protected set names {key}, which the model does not score")
        mask = torch.zeros(stored.targets[key].shape, dtype=torch.bool)
        rows, cols = zip(*cells)
        mask[list(rows), list(cols)] = True
        masks[key] = mask
    return masks


def matched_random_masks(stored: StoredWeights, critical: Mapping[str, torch.Tensor],
                         generator: torch.Generator) -> dict[str, torch.Tensor]:
    """As many weights per matrix as the critical set holds there, uniformly among the matrix's other weights:
    the protection a set with no structure would give."""
    masks = {}
    for key, mask in critical.items():
        free = torch.nonzero(~mask.reshape(-1), as_tuple=False).reshape(-1)
        count = int(mask.sum())
        if count > free.numel():
            raise ValueError(f"{key}: the critical set leaves too few weights for a matched random set")
        chosen = free[torch.randperm(free.numel(), generator=generator)[:count]]
        random_mask = torch.zeros(mask.numel(), dtype=torch.bool)
        random_mask[chosen] = True
        masks[key] = random_mask.reshape(mask.shape)
    return masks


@dataclass(frozen=True)
class TrialPlan:
    rates: list[float]
    trials: int
    collapse_factor: float


def run_trials(stored: StoredWeights, evaluate: Callable[[], float], *, baseline_ppl: float, plan: TrialPlan,
               arms: Mapping[str, Mapping[str, torch.Tensor] | None], seed: int,
               progress: bool = True) -> list[dict]:
    """One row per (rate, trial, arm): flips drawn, PPL after them, status and whether the model collapsed.

    ``evaluate()`` returns the PPL of the model as it stands (inf or NaN when the loss is not finite); ``arms``
    maps an arm name (``ARMS``) to its exempt masks (None: nothing exempt).
    """
    if not math.isfinite(baseline_ppl):
        raise ValueError(f"the {stored.format} baseline PPL is not finite ({baseline_ppl})")
    limit = plan.collapse_factor * baseline_ppl
    rows = []
    todo = [(i, rate, trial, arm) for i, rate in enumerate(plan.rates) for trial in range(plan.trials)
            for arm in arms]
    for rate_index, rate, trial, arm in tqdm(todo, desc=f"{stored.format} trials", disable=not progress,
                                             mininterval=2.0, leave=False):
        generator = torch.Generator().manual_seed(trial_seed(seed, stored.format, rate_index, trial, arm))
        exempt = arms[arm]
        draw = draw_bit_errors(stored, rate, generator, exempt=exempt)
        row = {"seed": seed, "format": stored.format, "rate": rate, "trial": trial, "arm": arm,
               "n_flips": draw.n_flips, "eligible_bits": draw.eligible_bits,
               "n_exempt": sum(int(m.sum()) for m in exempt.values()) if exempt else 0}
        if draw.n_flips == 0:
            rows.append({**row, "n_weights": 0, "ppl": baseline_ppl, "status": "no_flips", "collapsed": False})
            continue
        with bit_errors(stored, draw) as errors:
            value = evaluate()
        finite = math.isfinite(value)
        rows.append({**row, "n_weights": errors.n_weights, "ppl": value if finite else math.inf,
                     "status": "ok" if finite else "diverged", "collapsed": (not finite) or value > limit})
    return rows


__all__ = ["ARMS", "TrialPlan", "critical_masks", "matched_random_masks", "run_trials", "trial_seed"]
