"""Does the sensitivity map tell backdoored siblings from clean ones?

Each sibling's map (metric score per weight on clean text) gives features: how far its global top-k set moved from
the base model's (``shift_score``) and how its score mass splits over the matrices (``matrix_profile``). A
leave-one-out rule then scores every sibling without having seen it, and an AUC says how well the scores rank
backdoored above clean (esa.analysis.sibling_auc: pure statistics, which grade stages use without the engine).
"""

from __future__ import annotations

import numpy as np
import torch

from esa.engine.models.targets import scored_parameters
from esa.engine.scoring.passes import score_model

ScoreMap = dict[str, torch.Tensor]


def sensitivity_map(model: torch.nn.Module, windows: list[torch.Tensor], metric: str = "grad_x_weight", *,
                    seed: int = 0, pad_id: int = 0, include_embeddings: bool = False,
                    include_lm_head: bool = False) -> ScoreMap:
    """One metric's scores for every scored matrix of ``model`` over the calibration ``windows`` (the same
    targets the score stage uses; a tied matrix once). Parameters without a score under this metric are left out."""
    targets = scored_parameters(model, include_embeddings=include_embeddings, include_lm_head=include_lm_head)
    unique = list({t.name: t.parameter for t in targets}.items())
    result = score_model(model, unique, windows, [metric], seed=seed, pad_id=pad_id, progress=False)
    return {name: score for name, score in result.scores(metric).items() if score is not None}


def _check_same(a: ScoreMap, b: ScoreMap) -> list[str]:
    if set(a) != set(b):
        raise ValueError(f"maps name different matrices: {sorted(set(a) ^ set(b))[:5]}")
    bad = [n for n in a if a[n].shape != b[n].shape]
    if bad:
        raise ValueError(f"shapes differ for {bad[:5]}")
    return sorted(a)


def top_k_set(score_map: ScoreMap, k: int, names: list[str] | None = None) -> set[int]:
    """Global top-k weights as flat indices into the maps' matrices concatenated in ``names`` order (default
    sorted names)."""
    names = sorted(score_map) if names is None else names
    flat = torch.cat([score_map[n].detach().reshape(-1).double() for n in names])
    if not 1 <= k <= flat.numel():
        raise ValueError(f"k must lie in 1..{flat.numel()}, got {k}")
    return set(torch.topk(flat, k).indices.tolist())


def shift_score(sibling_map: ScoreMap, base_map: ScoreMap, k: int) -> float:
    """1 − Jaccard of the two maps' global top-k sets: 0 when fine-tuning left the critical set in place, 1 when
    it replaced it entirely."""
    names = _check_same(sibling_map, base_map)
    a, b = top_k_set(sibling_map, k, names), top_k_set(base_map, k, names)
    return 1.0 - len(a & b) / len(a | b)


def matrix_profile(score_map: ScoreMap) -> np.ndarray:
    """Each matrix's share of the map's total score mass, matrices in sorted-name order (so siblings' vectors line
    up). Scores are taken as magnitudes."""
    names = sorted(score_map)
    mass = np.array([score_map[n].detach().double().abs().sum().item() for n in names])
    total = mass.sum()
    if not total > 0:
        raise ValueError("the map has no score mass")
    return mass / total
