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
    values: tuple[float, ...]  # y, one per seed

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))


def ladder(observations: Iterable[ModelObservations | dict]) -> list[ModelObservations]:
    """The observations sorted by N, as ``ModelObservations``; ValueError with a one-line message when they cannot
    be fitted in log–log space (fewer than 4 models, repeated names or sizes, no seeds, non-positive N or y)."""
    models = [o if isinstance(o, ModelObservations) else
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
    """(models × draws) means of y, each model's seeds resampled with replacement independently of the others."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for m in models:
        values = np.asarray(m.values, dtype=float)
        picks = rng.integers(0, len(values), size=(draws, len(values)))
        rows.append(values[picks].mean(axis=1))
    return np.vstack(rows)
