"""Which of two metrics' top-k sets is more stable across seeds: the difference of their mean pairwise Jaccard.

The CI resamples seeds as ``pairwise_jaccard`` does for one metric. When both sides were computed on the same seeds
(the same score run, or runs with the same seed list), one draw of seeds serves both (paired: seed-level variation
both metrics share cancels); otherwise each side's seeds are drawn independently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Hashable, Mapping

import numpy as np

from esa.analysis.stability import Selection, boot_means, jaccard_matrix, seed_draws

METHOD = ("percentile bootstrap over seeds: each resample draws S seeds with replacement (numpy default_rng(rng_seed)) "
          "and takes the mean Jaccard over the pairs of distinct seeds in the draw, for each metric; {how}; resamples "
          "where a side drew a single distinct seed are dropped")


@dataclass
class StabilityDifference:
    value: float  # mean Jaccard of a − mean Jaccard of b
    mean_a: float
    mean_b: float
    ci_low: float
    ci_high: float
    n_seeds_a: int
    n_seeds_b: int
    paired: bool
    confidence: float
    n_boot: int  # resamples that contributed to the interval
    method: str

    as_dict = asdict


def _mean(matrix: np.ndarray) -> float:
    upper = matrix[np.triu_indices(len(matrix), k=1)]
    return float(np.nanmean(upper)) if np.isfinite(upper).any() else float("nan")  # as pairwise_jaccard's mean


def stability_difference(sets_a: Mapping[Hashable, Selection], sets_b: Mapping[Hashable, Selection], *,
                         n_boot: int = 2000, confidence: float = 0.95, rng_seed: int = 0) -> StabilityDifference:
    """Mean pairwise Jaccard of ``sets_a`` minus that of ``sets_b`` (seed → top-k selection), with a bootstrap CI."""
    paired = set(sets_a) == set(sets_b)
    if paired:
        sets_b = {seed: sets_b[seed] for seed in sets_a}  # the same seed order: one draw indexes both
    ma, mb = jaccard_matrix(sets_a), jaccard_matrix(sets_b)
    nan = float("nan")
    if len(ma) < 2 or len(mb) < 2:
        return StabilityDifference(nan, _mean(ma), _mean(mb), nan, nan, len(ma), len(mb), paired, confidence, 0,
                                   METHOD.format(how="undefined with fewer than 2 seeds"))
    # The first draw is the one pairwise_jaccard makes with this rng_seed: side a's resamples are its own.
    rng = np.random.default_rng(rng_seed)
    draws_a = seed_draws(len(ma), n_boot, rng)
    draws_b = draws_a if paired else seed_draws(len(mb), n_boot, rng)
    samples = boot_means(ma, draws_a) - boot_means(mb, draws_b)
    samples = samples[~np.isnan(samples)]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha]) if len(samples) else (nan, nan)
    how = ("one draw of the shared seeds for both metrics (paired)" if paired else
           "each side's seeds drawn independently (the sides do not share their seeds)")
    return StabilityDifference(_mean(ma) - _mean(mb), _mean(ma), _mean(mb), float(lo), float(hi), len(ma), len(mb),
                               paired, confidence, len(samples), METHOD.format(how=how))


__all__ = ["StabilityDifference", "stability_difference"]
