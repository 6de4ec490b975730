"""Synthetic ladders of models for the scaling tests: y = a·N^α with log-normal noise per seed."""

from __future__ import annotations

import numpy as np

SIZES = np.logspace(6, 9, 8)  # N from 1M to 1B non-embedding parameters


def ladder(alpha: float = -0.3, noise: float = 0.05, seeds: int = 5, sizes=SIZES, factors=None, rng_seed: int = 0,
           a: float = 2.0) -> list[dict]:
    """Observations of a power law; ``factors`` multiplies each model's y (an outlier, a break)."""
    rng = np.random.default_rng(rng_seed)
    factors = np.ones(len(sizes)) if factors is None else np.asarray(factors, dtype=float)
    return [{"model": f"m{i}", "n_params": float(n),
             "values": list(a * n ** alpha * f * np.exp(rng.normal(0.0, noise, seeds)))}
            for i, (n, f) in enumerate(zip(sizes, factors))]


def broken(alpha_below: float = -0.5, alpha_above: float = -0.05, at: int = 4, **kwargs) -> list[dict]:
    """A ladder whose log–log slope changes from ``alpha_below`` to ``alpha_above`` at model ``at``."""
    x = np.log(SIZES)
    shift = (alpha_above - alpha_below) * np.maximum(0.0, x - x[at])
    return ladder(alpha=alpha_below, factors=np.exp(shift), **kwargs)
