"""Scaling laws across a ladder of models: the power law of a quantity y (e.g. the critical fraction or a ΔPPL
ratio) against N (non-embedding parameters), its alternatives, and how well it predicts models it did not see.

``analyze_scaling`` returns a JSON-ready summary the scaling criteria grade (esa.grading.scaling_criteria).
Fits use the mean of y over each model's seeds. Uncertainty: a parametric bootstrap over seeds (each model's log
mean drawn from its t sampling distribution, the ladder refitted; resampling three seeds would only ever see
means between the extreme seeds) for α, R², the leave-one-out errors and the extrapolation. A ladder
where some model has a single seed has no seed-to-seed spread to resample: α then gets its OLS confidence
interval (across models), and R² and the prediction errors get no interval, so criteria on them are inconclusive
until every model has at least 2 seeds.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from esa.analysis.scaling_data import ModelObservations, bootstrap_means, ladder
from esa.analysis.scaling_fits import compare_laws
from esa.analysis.scaling_prediction import extrapolation, fitted_curves, line_fits, loo_relative_errors

DRAWS = 2000
RNG_SEED = 2000
BOOT_METHOD = ("parametric bootstrap over seeds: each model's log mean drawn from its t sampling distribution, "
               "log mean + sd/(√n·mean)·t(n−1) (numpy default_rng({seed}); a pairwise quantity resamples its seeds), "
               "the ladder refitted, {draws} draws, percentile intervals")


def _interval(samples: np.ndarray, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2
    return [float(q) for q in np.quantile(samples, [tail, 1 - tail])]


def analyze_scaling(observations: Iterable[ModelObservations | dict], draws: int = DRAWS, rng_seed: int = RNG_SEED,
                    confidence: float = 0.95) -> dict:
    """Fits, model choice, leave-one-out and extrapolation errors of a ladder, with their intervals."""
    models = ladder(observations)
    n_params = np.array([m.n_params for m in models])
    means = np.array([m.mean for m in models])
    laws = compare_laws(n_params, means)
    power = laws["fits"]["power_law"]
    predictions, errors = (a[:, 0] for a in loo_relative_errors(n_params, means[:, None]))
    extrapolated, extrapolation_error = (float(a[0]) for a in extrapolation(n_params, means[:, None]))
    seeds = [m.n_seeds for m in models]
    summary = {
        "n_models": len(models), "seeds_per_model": {m.model: n for m, n in zip(models, seeds)},
        "min_seeds": min(seeds),
        "models": [{"model": m.model, "n_params": m.n_params, "n_seeds": m.n_seeds, "values": list(m.values),
                    "mean": float(mean),
                    "loo_prediction": float(p), "loo_relative_error": float(e)}
                   for m, mean, p, e in zip(models, means, predictions, errors)],
        "power_law": {"alpha": power["alpha"], "alpha_ci": power["alpha_ols_ci"], "alpha_ci_method": "OLS",
                      "log_a": power["log_a"], "r2": power["r2"], "r2_ci": None},
        "laws": laws,
        "prediction_error": {
            "max": {"value": float(errors.max()), "ci": None, "model": models[int(errors.argmax())].model},
            "median": {"value": float(np.median(errors)), "ci": None}},
        "extrapolation": {"model": models[-1].model, "from_models": len(models) - 1, "prediction": extrapolated,
                          "observed": float(means[-1]), "relative_error": extrapolation_error, "ci": None},
        "bootstrap": None,
        # The fitted law across the ladder's sizes, for the page's plot (its band comes with the bootstrap).
        "curve": {"n_params": [float(n) for n in _grid(n_params)],
                  "fit": [float(v) for v in fitted_curves(n_params, means[:, None], _grid(n_params))[:, 0]],
                  "low": None, "high": None},
    }
    if min(seeds) < 2:
        single = [m.model for m, n in zip(models, seeds) if n < 2]
        summary["bootstrap_note"] = (f"no bootstrap over seeds: {', '.join(single)} ha{'ve' if len(single) > 1 else 's'}"
                                     " a single seed; α has its OLS CI, R² and prediction errors have none")
        return summary
    _add_bootstrap(summary, n_params, bootstrap_means(models, draws, rng_seed), confidence)
    summary["bootstrap"] = {"draws": draws, "rng_seed": rng_seed, "confidence": confidence,
                            "method": BOOT_METHOD.format(seed=rng_seed, draws=draws)}
    return summary


def _grid(n_params: np.ndarray, points: int = 40) -> np.ndarray:
    return np.logspace(np.log10(n_params.min()), np.log10(n_params.max()), points)


def _add_bootstrap(summary: dict, n_params: np.ndarray, resampled: np.ndarray, confidence: float) -> None:
    curves = fitted_curves(n_params, resampled, _grid(n_params))
    tail = (1 - confidence) / 2
    low, high = np.quantile(curves, [tail, 1 - tail], axis=1)
    summary["curve"].update(low=[float(v) for v in low], high=[float(v) for v in high])
    alpha, r2 = line_fits(n_params, resampled)
    power = summary["power_law"]
    power.update(alpha_ci=_interval(alpha, confidence), alpha_ci_method="bootstrap over seeds",
                 alpha_ols_ci=summary["laws"]["fits"]["power_law"]["alpha_ols_ci"], r2_ci=_interval(r2, confidence))
    _, errors = loo_relative_errors(n_params, resampled)
    for name, aggregate in (("max", errors.max(axis=0)), ("median", np.median(errors, axis=0))):
        summary["prediction_error"][name]["ci"] = _interval(aggregate, confidence)
    for row, model_errors in zip(summary["models"], errors):
        row["loo_relative_error_ci"] = _interval(model_errors, confidence)
    _, extrapolation_errors = extrapolation(n_params, resampled)
    summary["extrapolation"]["ci"] = _interval(extrapolation_errors, confidence)
