import math

import numpy as np
import pytest
from scipy import stats

from esa.analysis.dose_response import dose_response, hierarchy_at_each_level, rho_samples, spearman


def test_monotone_series_has_rho_one():
    res = dose_response([1, 2, 4, 8, 16], [0.1, 0.3, 0.35, 0.9, 2.0])
    assert res.status == "ok"
    assert res.rho == pytest.approx(1.0)
    assert res.monotonic and res.n_violations == 0
    assert res.p == pytest.approx(1 / math.factorial(5))  # exact permutation p: only the identity reaches ρ = 1
    assert math.isnan(res.rho_points)  # no replicates


def test_violation_detected_and_levels_sorted():
    res = dose_response([8, 1, 4, 2], [0.9, 0.1, 0.2, 0.3])  # in level order: 0.1, 0.3, 0.2, 0.9
    assert res.levels == [1.0, 2.0, 4.0, 8.0]
    assert not res.monotonic and res.n_violations == 1 and res.violations == [(2.0, 4.0)]
    assert res.rho == pytest.approx(stats.spearmanr([1, 2, 4, 8], [0.1, 0.3, 0.2, 0.9]).statistic)
    assert dose_response([1, 2, 3], [0.1, 0.1, 0.2]).monotonic  # ties are non-decreasing
    with pytest.raises(ValueError):
        dose_response([1, 1, 2], [0.1, 0.2, 0.3])


def test_replicates_give_level_means_and_cis():
    rng = np.random.default_rng(0)
    levels = [1, 2, 4, 8]
    effects = [0.2 * lv + 0.05 * rng.standard_normal(3) for lv in levels]
    res = dose_response(levels, effects)
    row = res.table.iloc[2]
    ci = stats.ttest_1samp(effects[2], 0.0).confidence_interval(0.95)
    assert row["n"] == 3 and row["mean"] == pytest.approx(effects[2].mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    x = np.repeat(levels, 3)
    assert res.rho_points == pytest.approx(stats.spearmanr(x, np.concatenate(effects)).statistic)
    assert res.p_points < 0.01
    assert set(res.as_dict()) >= {"rho", "p", "monotonic", "n_violations", "table"}


def test_spearman_p_is_deterministic_and_handles_edge_cases():
    x, y = [1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 2, 5, 4, 6, 8, 7, 9]
    assert spearman(x, y, rng_seed=3) == spearman(x, y, rng_seed=3)
    assert spearman(x, y)[1] < 0.01
    assert all(math.isnan(v) for v in spearman([1, 2, 3], [1, 1, 1]))
    diverged = dose_response([1, 2, 3], [0.1, 0.5, float("inf")])  # a diverged run ranks as the largest effect
    assert diverged.rho == pytest.approx(1.0) and diverged.monotonic
    assert dose_response([1, 2, 3], [0.1, float("nan"), 0.3]).status == "inconclusive"


def test_hierarchy_at_each_level():
    levels = [1, 2, 4]
    res = hierarchy_at_each_level(levels, {"super": [1.0, 2.0, 4.0], "random": [0.5, 2.5, [1.0, 1.4]],
                                           "bottom": [0.1, 0.2, 0.3]})
    assert res.n_levels == 3 and res.n_holding == 2 and not res.all_hold
    assert res.table["failed"].tolist() == ["", "super > random", ""]
    assert res.table.loc[2, "random"] == pytest.approx(1.2)


def test_rho_samples_match_scipy_row_by_row():
    rng = np.random.default_rng(4)
    levels = [0.5, 1, 2, 4, 8]
    samples = rng.standard_normal((50, 5)) + np.arange(5)
    samples[3, 4] = np.inf  # a diverged level ranks highest
    samples[7] = 1.0  # constant: no ρ
    samples[9, 0] = np.nan
    rho = rho_samples(levels, samples)
    for i in (0, 1, 3, 20):
        assert rho[i] == pytest.approx(stats.spearmanr(levels, samples[i]).statistic)
    assert np.isnan(rho[7]) and np.isnan(rho[9])


def test_bootstrap_gives_rho_ci_level_cis_and_distinguishable_levels():
    rng = np.random.default_rng(5)
    levels = [4, 1, 2, 8]  # unsorted on purpose: boot columns follow this order
    means = np.array([0.4, 0.0, 0.1, 0.8])
    boot = means + rng.normal(0, 0.02, (400, 4))
    boot[:, 2] = 0.42 + rng.normal(0, 0.02, 400)  # level 2 overlaps level 4: ρ is 1 or 0.8
    res = dose_response(levels, [0.4, 0.0, 0.42, 0.8], boot=boot)
    assert res.levels == [1.0, 2.0, 4.0, 8.0] and res.n_boot == 400
    assert (res.rho_ci_low, res.rho_ci_high) == pytest.approx((0.8, 1.0))
    lo, hi = np.quantile(boot[:, 1], [0.025, 0.975])
    assert (res.table.loc[0, "ci_low"], res.table.loc[0, "ci_high"]) == pytest.approx((lo, hi))
    assert res.n_distinguishable == 3  # level 1 (mean 0) straddles 0
    plain = dose_response(levels, [0.4, 0.0, 0.42, 0.8])
    assert plain.n_distinguishable is None and math.isnan(plain.rho_ci_low)
