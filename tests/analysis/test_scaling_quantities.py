"""The per-model quantities of a scaling run, on hand-built scores, conditions and tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from esa.analysis import scaling_quantities as q


def test_distribution_quantities_by_hand():
    scores = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 50.0, 100.0, 1.0, 2.0, 2.0])  # median 2
    out = q.distribution_quantities(scores, critical_multiple=10)
    assert out["critical_fraction"] == pytest.approx(2 / 10)  # 50 and 100 exceed 20
    assert out["top_mass_1pct"] == pytest.approx(100 / scores.sum())  # ceil(1% of 10) = 1 weight
    assert out["top_mass_0.1pct"] == out["top_mass_1pct"]
    assert math.isnan(q.distribution_quantities(np.zeros(5), 10)["critical_fraction"])  # zero median


def test_delta_ppl_ratio_reads_the_first_level_and_refuses_diverged_or_zero_controls():
    rows = pd.DataFrame([
        {"target": "super", "level": 1.0, "delta_ppl": 6.0, "status": "ok"},
        {"target": "random_k", "level": 1.0, "delta_ppl": 2.0, "status": "ok"},
        {"target": "super", "level": 2.0, "delta_ppl": 9.0, "status": "ok"},
        {"target": "random_k", "level": 2.0, "delta_ppl": 1.0, "status": "ok"},
    ])
    assert q.delta_ppl_ratio(rows, "random_k") == pytest.approx(3.0)
    assert q.delta_ppl_ratio(rows, "random_k", level=2.0) == pytest.approx(9.0)
    assert math.isnan(q.delta_ppl_ratio(rows, "bottom_k"))
    diverged = rows.assign(status=["diverged", "ok", "ok", "ok"])
    assert math.isnan(q.delta_ppl_ratio(diverged, "random_k"))


def test_spike_ratio_is_the_best_min_of_input_and_output_spikes():
    layers = [{"input_ratio": 80.0, "output_ratio": 5.0}, {"input_ratio": 30.0, "output_ratio": 40.0}]
    assert q.spike_ratio({"layers": layers}) == 30.0
    assert math.isnan(q.spike_ratio({"layers": []}))


def test_stability_chance_is_the_pooled_hypergeometric_expectation():
    stats = pd.DataFrame({"metric": ["m", "m", "other"], "count": [100, 400, 9], "n_nonfinite": [0, 0, 0]})
    expected = (10 * 10 / 100 + 10 * 10 / 400) / ((20 - 1.0) + (20 - 0.25))
    assert q.stability_chance(stats, "m", 10) == pytest.approx(expected)
    rng = np.random.default_rng(0)  # and by simulation: two random 10-subsets of each matrix, pooled
    hits = unions = 0
    for _ in range(4000):
        for n in (100, 400):
            a, b = set(rng.choice(n, 10, replace=False)), set(rng.choice(n, 10, replace=False))
            hits, unions = hits + len(a & b), unions + len(a | b)
    assert hits / unions == pytest.approx(expected, rel=0.05)


def test_hill_alpha_pools_the_metrics_matrices():
    stats = pd.DataFrame({"metric": ["m", "m", "x"], "hill_alpha": [2.0, 4.0, 9.0], "hill_m": [10, 30, 5]})
    assert q.hill_alpha(stats, "m") == pytest.approx(40 / (10 / 2 + 30 / 4))
