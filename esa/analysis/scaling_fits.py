"""The laws a ladder of models is fitted with (statsmodels OLS on the per-model mean of y) and their comparison.

Forms: power law log y = log a + α log N; log-linear y = a + b log N; exponential log y = log a + b N; broken
power law, two slopes in log–log space joined at a changepoint N_b, chosen by least squares among the interior
models. AIC and BIC compare them on one scale: a form fitted to log y has its Gaussian log-likelihood moved to the
y scale by the Jacobian, −Σ log y. Parameters counted (the noise variance included): 3 for each single law
(intercept, slope, σ), 5 for the broken power law (intercept, two slopes, the changepoint, σ). A ladder has few
models, so AIC's small-sample correction AICc = AIC + 2k(k+1)/(n − k − 1) (Hurvich & Tsai 1989) is the
preferred criterion: without it a 5-parameter law fitted to 6 models nearly interpolates them and always wins.
AICc is undefined (None, and the form is not eligible) when n ≤ k + 1.
"""

from __future__ import annotations

import math

import numpy as np
import statsmodels.api as sm

PARAMETERS = {"power_law": 3, "log_linear": 3, "exponential": 3, "broken_power_law": 5}
FORMS = {
    "power_law": "log y = log a + α log N",
    "log_linear": "y = a + b log N",
    "exponential": "log y = log a + b N",
    "broken_power_law": "log y = log a + α₁ log N below N_b, slope α₂ above (continuous at N_b)",
}


def power_law(n_params: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> dict:
    """α with its OLS CI, log a and R² of the power law, fitted in log–log space."""
    fit = sm.OLS(np.log(y), sm.add_constant(np.log(n_params))).fit()
    low, high = fit.conf_int(alpha)[1]
    return {"alpha": float(fit.params[1]), "alpha_ols_ci": [float(low), float(high)], "log_a": float(fit.params[0]),
            "r2": float(fit.rsquared), **_criteria(fit, y, logged=True, form="power_law")}


def log_linear(n_params: np.ndarray, y: np.ndarray) -> dict:
    fit = sm.OLS(y, sm.add_constant(np.log(n_params))).fit()
    return {"a": float(fit.params[0]), "b": float(fit.params[1]), "r2": float(fit.rsquared),
            **_criteria(fit, y, logged=False, form="log_linear")}


def exponential(n_params: np.ndarray, y: np.ndarray) -> dict:
    scale = float(n_params.max())  # N in units of the largest model keeps the design well conditioned
    fit = sm.OLS(np.log(y), sm.add_constant(n_params / scale)).fit()
    return {"log_a": float(fit.params[0]), "b": float(fit.params[1]) / scale, "r2": float(fit.rsquared),
            **_criteria(fit, y, logged=True, form="exponential")}


def broken_power_law(n_params: np.ndarray, y: np.ndarray) -> dict:
    """The hinge fit whose changepoint (one of the interior models' N) leaves the least squared error."""
    x = np.log(n_params)
    best = None
    for i in range(1, len(x) - 1):
        design = np.column_stack([np.ones_like(x), x, np.maximum(0.0, x - x[i])])
        fit = sm.OLS(np.log(y), design).fit()
        if best is None or fit.ssr < best[1].ssr:
            best = (i, fit)
    i, fit = best
    return {"changepoint_n": float(n_params[i]), "changepoint_index": i, "log_a": float(fit.params[0]),
            "alpha_below": float(fit.params[1]), "alpha_above": float(fit.params[1] + fit.params[2]),
            "r2": float(fit.rsquared), **_criteria(fit, y, logged=True, form="broken_power_law")}


def _criteria(fit, y: np.ndarray, logged: bool, form: str) -> dict:
    k, n = PARAMETERS[form], len(y)
    llf = float(fit.llf) - (float(np.log(y).sum()) if logged else 0.0)
    aic = 2 * k - 2 * llf
    aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n > k + 1 else None
    return {"parameters": k, "log_likelihood": llf, "aic": aic, "aicc": aicc, "bic": k * math.log(n) - 2 * llf}


def compare_laws(n_params: np.ndarray, y: np.ndarray) -> dict:
    """Every form's fit, and the form AIC and BIC each choose, with each form's distance from the best."""
    fits = {"power_law": power_law(n_params, y), "log_linear": log_linear(n_params, y),
            "exponential": exponential(n_params, y), "broken_power_law": broken_power_law(n_params, y)}
    choice = {}
    for score in ("aic", "aicc", "bic"):
        eligible = [form for form in fits if fits[form][score] is not None]
        best = min(eligible, key=lambda form: fits[form][score]) if eligible else None  # AICc needs n > k + 1
        choice[score] = best
        for form, fit in fits.items():
            fit[f"delta_{score}"] = None if best is None or fit[score] is None else fit[score] - fits[best][score]
    for form, fit in fits.items():
        fit["form"] = FORMS[form]
    return {"fits": fits, "best_by_aic": choice["aic"], "best_by_aicc": choice["aicc"], "best_by_bic": choice["bic"]}
