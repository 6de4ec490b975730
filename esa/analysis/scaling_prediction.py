"""The power law as a predictor: leave-one-out prediction of each model from the others, extrapolation of the
largest from the smaller ones, and the α and R² of many fits at once (the bootstrap refits thousands of ladders).

Every function takes the per-model means of y as a (models × columns) array, one column per resampled ladder; the
design (log N) is the same for all columns, so one least-squares solve fits every column.
"""

from __future__ import annotations

import numpy as np


def _design(n_params: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(n_params)), np.log(n_params)])


def line_fits(n_params: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """α and R² of the power law fitted to each column of ``means`` (the same OLS statsmodels computes)."""
    log_y = np.log(means)
    coef, *_ = np.linalg.lstsq(_design(n_params), log_y, rcond=None)
    residual = log_y - _design(n_params) @ coef
    total = ((log_y - log_y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - (residual ** 2).sum(axis=0) / total
    return coef[1], r2


def _predict(n_params: np.ndarray, means: np.ndarray, fit_rows: np.ndarray, at: int) -> np.ndarray:
    """y at model ``at`` from the power law fitted to the models in ``fit_rows`` (one prediction per column)."""
    design = _design(n_params)
    coef, *_ = np.linalg.lstsq(design[fit_rows], np.log(means[fit_rows]), rcond=None)
    return np.exp(design[at] @ coef)


def loo_relative_errors(n_params: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, |pred − obs| / obs), each (models × columns): model i predicted from the other models."""
    rows = np.arange(len(n_params))
    predictions = np.vstack([_predict(n_params, means, rows[rows != i], i) for i in rows])
    return predictions, np.abs(predictions - means) / means


def extrapolation(n_params: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, relative error) of the largest model from the power law of the smaller ones."""
    largest = int(np.argmax(n_params))
    others = np.array([i for i in range(len(n_params)) if i != largest])
    prediction = _predict(n_params, means, others, largest)
    return prediction, np.abs(prediction - means[largest]) / means[largest]


def fitted_curves(n_params: np.ndarray, means: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(grid points × columns): the power law fitted to each column of ``means``, evaluated at the sizes ``grid``."""
    coef, *_ = np.linalg.lstsq(_design(n_params), np.log(means), rcond=None)
    return np.exp(_design(grid) @ coef)
