import numpy as np
import pandas as pd
import pytest
import torch

from esa.analysis.tails import heavy_tail_summary, pooled_hill, tail_excess
from esa.engine.scoring.score_stats import tensor_score_stats


def test_pooled_hill_recovers_common_index():
    rng = np.random.default_rng(0)
    rows = [dict(component="mlp_down", **tensor_score_stats(torch.from_numpy(rng.pareto(2.0, 20_000) + 1.0)))
            for _ in range(5)]
    summary = heavy_tail_summary(rows)
    assert summary.n_tensors == 5 and abs(summary.pooled_hill_alpha - 2.0) < 0.2
    assert summary.value == summary.median_top1pct_over_median > 1
    assert heavy_tail_summary(rows, exclude_components=["mlp_down"]).n_tensors == 0


def test_pooled_hill_hand():
    assert pooled_hill(np.array([1.0, 4.0, np.nan]), np.array([10, 30, 5])) == pytest.approx(40 / (10 + 7.5))


def _rows(observed, null, median=1.0, null_median=1.0, expert=None):
    n = len(observed)
    return pd.DataFrame({"tensor": [f"t{i}" for i in range(n)], "expert": expert or [None] * n, "layer": 0,
                         "component": "mlp_up", "top1pct_over_median": observed, "null_top1pct_over_median": null,
                         "median": median, "null_median": null_median})


def test_tail_excess_is_the_median_of_seed_mean_ratios():
    # Per matrix excess: seed 1 [2, 4, 6, 8, 10] / 2, seed 2 [4, 4, 4, 4, 4] / 2 → means [1.5, 2, 2.5, 3, 3.5].
    one = _rows([2, 4, 6, 8, 10], [1, 1, 1, 1, 1])
    two = _rows([4, 4, 4, 4, 4], [1, 1, 1, 1, 1])
    res = tail_excess({1: one.assign(top1pct_over_median=one["top1pct_over_median"] / 2),
                       2: two.assign(top1pct_over_median=two["top1pct_over_median"] / 2)}, n_boot=500)
    assert res.table["excess"].tolist() == pytest.approx([1.5, 2, 2.5, 3, 3.5])
    assert res.value == pytest.approx(2.5) and res.n_matrices == 5 and res.n_seeds == 2
    assert 1.5 <= res.ci_low <= 2.5 <= res.ci_high <= 3.5 and res.note == ""
    first, again = (tail_excess({1: one, 2: two}, n_boot=500, rng_seed=3) for _ in range(2))
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)  # seeded


def test_tail_excess_drops_undefined_ratios_and_needs_matrices():
    rows = _rows([3, 3, 3, 3, 3, 3], [1, 1, 1, 1, 1, np.nan], median=[1, 1, 1, 1, 0, 1])
    res = tail_excess({1: rows})
    # a zero median and a missing null leave two matrices out: 4 < 5, no CI
    assert res.n_matrices == 4 and res.n_undefined == 2 and res.value == 3.0
    assert np.isnan(res.ci_low) and "at least 5 matrices" in res.note
    assert "no null statistic" in tail_excess({1: rows.drop(columns="null_top1pct_over_median")}).note


def test_tail_excess_keeps_expert_slices_apart():
    rows = _rows([2, 4, 6, 8, 10], [1] * 5, expert=[0, 1, 2, 3, 4]).assign(tensor="packed")
    res = tail_excess({1: rows})
    assert res.n_matrices == 5 and res.value == 6.0
