import numpy as np
import pandas as pd
import pytest
from scipy import stats

from esa.analysis.overlap import overlap, seed_mean_ci


def _topk(keys, scores):
    return pd.DataFrame({"tensor": [k[0] for k in keys], "flat_index": [k[1] for k in keys], "score": scores})


def test_overlap_on_intersection_without_lookups():
    a = _topk([("w", 1), ("w", 2), ("w", 3), ("w", 4), ("w", 5)], [5.0, 4.0, 3.0, 2.0, 1.0])
    b = _topk([("w", 1), ("w", 2), ("w", 3), ("w", 4), ("w", 9)], [1.0, 3.0, 2.0, 4.0, 9.0])
    res = overlap(a, b)
    assert (res.n_intersection, res.n_union) == (4, 6)
    assert res.jaccard == pytest.approx(4 / 6) and res.overlap_coefficient == pytest.approx(4 / 5)
    assert res.spearman_on == "intersection" and res.n_spearman == 4
    ref = stats.spearmanr([5, 4, 3, 2], [1, 3, 2, 4])
    assert res.spearman_rho == pytest.approx(ref.statistic) and res.spearman_p == pytest.approx(ref.pvalue)


def test_overlap_on_union_with_full_scores():
    a = _topk([("w", 1), ("w", 2), ("v", 0)], [3.0, 2.0, 1.0])
    b = _topk([("w", 2), ("w", 7)], [5.0, 4.0])
    full_a = {("w", 1): 3.0, ("w", 2): 2.0, ("v", 0): 1.0, ("w", 7): 0.5}
    full_b = _topk([("w", 1), ("w", 2), ("v", 0), ("w", 7)], [0.1, 5.0, 0.2, 4.0])
    res = overlap(a, b, scores_a=lambda t, i: full_a[(t, i)], scores_b=full_b)
    assert res.spearman_on == "union" and res.n_spearman == 4
    keys = sorted(full_a)
    x = [full_a[k] for k in keys]
    y = [dict(zip(zip(full_b.tensor, full_b.flat_index), full_b.score))[k] for k in keys]
    assert res.spearman_rho == pytest.approx(stats.spearmanr(x, y).statistic)
    # a lookup that misses an element falls back to the intersection
    partial = overlap(a, b, scores_a=lambda t, i: full_a[(t, i)])
    assert partial.spearman_on == "intersection" and partial.n_spearman == 1 and np.isnan(partial.spearman_rho)


def test_seed_mean_ci_resamples_seeds():
    lo, hi = seed_mean_ci([0.2, 0.4, 0.9], n_boot=2000, rng_seed=1)
    assert 0.2 <= lo < np.mean([0.2, 0.4, 0.9]) < hi <= 0.9
    assert seed_mean_ci([0.3, 0.3]) == (0.3, 0.3)
    assert all(np.isnan(seed_mean_ci([0.5])))  # one seed: no spread to speak of
    assert all(np.isnan(seed_mean_ci([0.5, float("nan")])))
