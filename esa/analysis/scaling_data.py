"""The observations a scaling fit reads: per model of a ladder its size N (non-embedding parameters) and one value
of the quantity y per seed, checked once so the fits can assume a usable ladder."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

MIN_MODELS = 4  # a two-parameter law on fewer points leaves too little to test it (and leave-one-out needs 3 to fit)


@dataclass(frozen=True)
class ModelObservations:
    model: str
    n_params: float  # N: non-embedding parameters
    values: tuple[float, ...]  # y, one per seed; for a pairwise quantity, one per pair of seeds (upper triangle)
    # A quantity measured on pairs of seeds (the Jaccard of two seeds' top-k sets): the seeds × seeds matrix, NaN on
    # the diagonal. The bootstrap then resamples seeds, not pairs: pairs sharing a seed are not independent.
    pairwise: tuple[tuple[float, ...], ...] | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def n_seeds(self) -> int:
        return len(self.pairwise) if self.pairwise is not None else len(self.values)


def pairwise_observations(model: str, n_params: float, matrix) -> ModelObservations:
    """Observations of a pairwise quantity from its seeds × seeds matrix (diagonal ignored)."""
    matrix = np.asarray(matrix, dtype=float)
    upper = matrix[np.triu_indices(len(matrix), k=1)]
    return ModelObservations(model, float(n_params), tuple(float(v) for v in upper),
                             tuple(tuple(float(v) for v in row) for row in matrix))


def ladder(observations: Iterable[ModelObservations | dict]) -> list[ModelObservations]:
    """The observations sorted by N, as ``ModelObservations``; ValueError with a one-line message when they cannot
    be fitted in log–log space (fewer than 4 models, repeated names or sizes, no seeds, non-positive N or y)."""
    models = [o if isinstance(o, ModelObservations) else
              pairwise_observations(str(o["model"]), float(o["n_params"]), o["pairwise"]) if o.get("pairwise") else
              ModelObservations(str(o["model"]), float(o["n_params"]), tuple(float(v) for v in o["values"]))
              for o in observations]
    if len(models) < MIN_MODELS:
        raise ValueError(f"a scaling fit needs at least {MIN_MODELS} models, got {len(models)}"
                         + (f" ({', '.join(m.model for m in models)})" if models else ""))
    names = [m.model for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"each model may appear once in a scaling fit: {', '.join(sorted(_repeated(names)))} repeated")
    sizes = [m.n_params for m in models]
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"each model needs its own size N: {', '.join(f'{n:g}' for n in _repeated(sizes))} repeated")
    for m in models:
        if not m.values:
            raise ValueError(f"model {m.model} has no values")
        if not (math.isfinite(m.n_params) and m.n_params > 0):
            raise ValueError(f"model {m.model}: N must be a positive number of parameters, got {m.n_params:g}")
        bad = [v for v in m.values if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(f"model {m.model}: a log–log fit needs finite positive values of y, got "
                             f"{', '.join(f'{v:g}' for v in bad[:3])}")
    return sorted(models, key=lambda m: m.n_params)


def _repeated(items: list) -> list:
    return sorted({x for x in items if items.count(x) > 1})


def bootstrap_means(models: list[ModelObservations], draws: int, rng_seed: int) -> np.ndarray:
    """(models × draws) means of y, each model's independently of the others: drawn from the t sampling
    distribution of its (log) mean over seeds (a parametric bootstrap; see the comment below).

    A pairwise quantity resamples its seeds and averages the pairs of distinct seeds drawn; a draw that holds a
    single distinct seed has no pair and is drawn again (the bootstrap conditioned on at least two seeds, as the
    Phase-2 stability CI is).
    """
    rng = np.random.default_rng(rng_seed)
    rows = []
    for m in models:
        if m.pairwise is not None:
            rows.append(_pairwise_means(np.asarray(m.pairwise, dtype=float), draws, rng))
            continue
        # Each model's mean drawn from the t sampling distribution of its log (the fits are in log space, and y > 0):
        # log mean + (sd / (√n · mean)) · t(n − 1), the delta-method standard error. With 3 seeds, resampling the
        # seeds themselves would only ever see means between the smallest and largest seed: too narrow.
        values = np.asarray(m.values, dtype=float)
        relative = values.std(ddof=1) / (np.sqrt(len(values)) * values.mean())
        rows.append(values.mean() * np.exp(relative * rng.standard_t(len(values) - 1, size=draws)))
    return np.vstack(rows)


def _pairwise_means(matrix: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    from esa.analysis.stability import boot_means, seed_draws

    seeds = len(matrix)
    picks = seed_draws(seeds, draws, rng)
    means = boot_means(matrix, picks)
    while np.isnan(means).any():
        again = np.isnan(means)
        picks = seed_draws(seeds, int(again.sum()), rng)
        means[again] = boot_means(matrix, picks)
    return means


def seed_interval(values, confidence: float = 0.95) -> tuple[float, float] | None:
    """The t-interval of a model's mean over its seeds (seeds are independent draws); None below 2 seeds. With a
    handful of seeds a t-interval is honest where a percentile bootstrap would be too narrow."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)
