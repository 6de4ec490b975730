import numpy as np
import pandas as pd
import pytest

from esa.analysis.stability import jaccard, pairwise_jaccard, stability_vs_k


def _topk(keys, scores=None):
    return pd.DataFrame({"tensor": [k[0] for k in keys], "flat_index": [k[1] for k in keys],
                         "score": scores or [1.0] * len(keys), "rank": list(range(len(keys)))})


def test_jaccard_hand():
    a = _topk([("w", 1), ("w", 2), ("v", 3)])
    b = _topk([("w", 2), ("v", 3), ("v", 4), ("v", 5)])
    assert jaccard(a, b) == pytest.approx(2 / 5)
    assert jaccard({("w", 1)}, {("w", 1)}) == 1.0
    assert np.isnan(jaccard(set(), set()))


def test_pairwise_and_bootstrap_ci():
    sets = {1: {1, 2, 3, 4}, 2: {1, 2, 3, 5}, 3: {1, 2, 6, 7}}
    res = pairwise_jaccard(sets, n_boot=500, rng_seed=0)
    expected = {(1, 2): 3 / 5, (1, 3): 2 / 6, (2, 3): 2 / 6}
    got = {(r.seed_a, r.seed_b): r.jaccard for r in res.pairs.itertuples()}
    assert got == pytest.approx(expected)
    assert res.mean == pytest.approx(np.mean(list(expected.values())))
    assert res.min == pytest.approx(1 / 3)
    # Every resample mean is a mean of some of the three pair values, so the CI lies within their range.
    assert 1 / 3 - 1e-12 <= res.ci_low <= res.mean <= res.ci_high <= 3 / 5 + 1e-12
    again = pairwise_jaccard(sets, n_boot=500, rng_seed=0)
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)  # seeded
    single = pairwise_jaccard({1: {1}})
    assert np.isnan(single.mean)


def test_stability_vs_k_uses_rank_prefixes():
    a = _topk([("w", i) for i in [1, 2, 3, 4]])
    b = _topk([("w", i) for i in [1, 5, 3, 6]])
    table = stability_vs_k({0: a, 1: b}, [1, 2, 3, 4], n_boot=100)
    assert table["mean"].tolist() == pytest.approx([1.0, 1 / 3, 2 / 4, 2 / 6])
    with pytest.raises(ValueError):
        stability_vs_k({0: a, 1: b}, [5])
