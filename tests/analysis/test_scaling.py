"""The scaling core: the power law and its alternatives, model choice, leave-one-out, extrapolation, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scaling_ladders import SIZES, broken, ladder

from esa.analysis.scaling import analyze_scaling
from esa.analysis.scaling_data import ladder as checked_ladder
from esa.analysis.scaling_fits import PARAMETERS
from esa.analysis.scaling_prediction import line_fits


def test_power_law_recovers_alpha_and_r2_from_noisy_seeds():
    summary = analyze_scaling(ladder(alpha=-0.3, noise=0.05, seeds=5))
    power = summary["power_law"]
    assert power["alpha"] == pytest.approx(-0.3, abs=0.02)
    assert power["r2"] > 0.99 and power["r2_ci"][0] > 0.98
    assert power["alpha_ci_method"] == "bootstrap over seeds"
    assert summary["n_models"] == 8 and summary["min_seeds"] == 5


def test_batched_fit_matches_statsmodels():
    obs = ladder(noise=0.2, seeds=3)
    means = np.array([np.mean(o["values"]) for o in obs])
    fit = sm.OLS(np.log(means), sm.add_constant(np.log(SIZES))).fit()
    alpha, r2 = line_fits(SIZES, means[:, None])
    assert alpha[0] == pytest.approx(fit.params[1]) and r2[0] == pytest.approx(fit.rsquared)


def test_bootstrap_ci_covers_the_true_alpha():
    covered = [analyze_scaling(ladder(alpha=-0.25, noise=0.3, seeds=6, rng_seed=s), draws=500)["power_law"]["alpha_ci"]
               for s in range(10)]
    assert sum(lo <= -0.25 <= hi for lo, hi in covered) >= 8


def test_model_choice_prefers_the_broken_power_law_on_a_planted_break():
    laws = analyze_scaling(broken(noise=0.05, seeds=5), draws=50)["laws"]
    assert laws["best_by_aic"] == laws["best_by_bic"] == "broken_power_law"
    fit = laws["fits"]["broken_power_law"]
    assert fit["changepoint_n"] == pytest.approx(SIZES[4])
    assert fit["alpha_below"] == pytest.approx(-0.5, abs=0.05) and fit["alpha_above"] == pytest.approx(-0.05, abs=0.05)
    assert fit["parameters"] == 5 and PARAMETERS["power_law"] == 3


def test_model_choice_prefers_the_plain_power_law_without_a_break():
    laws = analyze_scaling(ladder(noise=0.05, seeds=5), draws=50)["laws"]
    assert laws["best_by_aic"] == laws["best_by_bic"] == "power_law"
    assert laws["fits"]["broken_power_law"]["delta_bic"] > 0


def test_leave_one_out_flags_the_planted_outlier():
    factors = np.ones(8)
    factors[3] = 2.5
    summary = analyze_scaling(ladder(noise=0.03, seeds=4, factors=factors), draws=200)
    errors = {row["model"]: row["loo_relative_error"] for row in summary["models"]}
    assert max(errors, key=errors.get) == "m3" == summary["prediction_error"]["max"]["model"]
    assert errors["m3"] > 0.5


def test_extrapolation_of_the_largest_model():
    summary = analyze_scaling(ladder(alpha=-0.3, noise=0.02, seeds=4), draws=200)
    extra = summary["extrapolation"]
    assert extra["model"] == "m7" and extra["from_models"] == 7
    assert extra["prediction"] == pytest.approx(2.0 * SIZES[-1] ** -0.3, rel=0.05)
    assert extra["relative_error"] < 0.05 and extra["ci"][1] < 0.1


def test_a_single_seed_per_model_gives_alpha_its_ols_ci_and_r2_none():
    summary = analyze_scaling(ladder(seeds=1))
    power = summary["power_law"]
    assert power["alpha_ci_method"] == "OLS" and power["alpha_ci"][0] < power["alpha"] < power["alpha_ci"][1]
    assert power["r2_ci"] is None and summary["prediction_error"]["max"]["ci"] is None
    assert summary["bootstrap"] is None and "single seed" in summary["bootstrap_note"]


def test_fewer_than_four_models_is_an_error():
    with pytest.raises(ValueError, match=r"^a scaling fit needs at least 4 models, got 3 \(m0, m1, m2\)$"):
        analyze_scaling(ladder(sizes=SIZES[:3]))


@pytest.mark.parametrize("bad", [0.0, -0.1])
def test_non_positive_y_is_an_error(bad):
    obs = ladder()
    obs[2]["values"][1] = bad
    with pytest.raises(ValueError, match=f"^model m2: a log–log fit needs finite positive values of y, got {bad:g}$"):
        checked_ladder(obs)


def test_observations_are_sorted_by_size():
    assert [m.model for m in checked_ladder(ladder()[::-1])] == [f"m{i}" for i in range(8)]


def test_curve_is_the_fitted_law_and_its_band_contains_it():
    summary = analyze_scaling(ladder(alpha=-0.3, noise=0.1, seeds=4), draws=300)
    curve, power = summary["curve"], summary["power_law"]
    n = np.array(curve["n_params"])
    assert n[0] == pytest.approx(SIZES[0]) and n[-1] == pytest.approx(SIZES[-1])
    assert np.allclose(curve["fit"], np.exp(power["log_a"]) * n ** power["alpha"])
    assert all(lo <= f <= hi for lo, f, hi in zip(curve["low"], curve["fit"], curve["high"]))
    assert analyze_scaling(ladder(seeds=1))["curve"]["low"] is None


def test_seed_interval_is_the_t_interval_of_the_mean():
    from scipy import stats

    from esa.analysis.scaling_data import seed_interval

    values = [1.0, 2.0, 4.0]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert seed_interval(values) == pytest.approx((low, high))
    assert seed_interval([3.0]) is None


def test_aicc_keeps_a_five_parameter_law_from_winning_on_six_models():
    from esa.analysis.scaling_fits import compare_laws

    sizes = SIZES[:6]
    obs = ladder(alpha=-0.3, noise=0.05, seeds=3, sizes=sizes, rng_seed=3)
    means = np.array([np.mean(o["values"]) for o in obs])
    laws = compare_laws(sizes, means)
    assert laws["fits"]["broken_power_law"]["aicc"] is None  # n = 6 ≤ k + 1: undefined, not eligible
    assert laws["best_by_aicc"] == "power_law"
    fit = laws["fits"]["power_law"]
    assert fit["aicc"] == pytest.approx(fit["aic"] + 2 * 3 * 4 / (6 - 3 - 1))


def test_aicc_chooses_nothing_when_no_law_has_enough_models():
    from esa.analysis.scaling_fits import compare_laws

    obs = ladder(seeds=2, sizes=SIZES[:4])
    laws = compare_laws(SIZES[:4], np.array([np.mean(o["values"]) for o in obs]))
    assert laws["best_by_aicc"] is None and laws["best_by_aic"] is not None
    assert all(fit["delta_aicc"] is None for fit in laws["fits"].values())
