import numpy as np
import pytest
import torch

from esa.analysis.tails import heavy_tail_summary, pooled_hill
from esa.engine.score_stats import tensor_score_stats


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
