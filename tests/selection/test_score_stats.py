import numpy as np
import pandas as pd
import pytest
import torch

from esa.analysis.score_tables import HIST_EDGES_LOG10, layer_component_summary
from esa.engine.scoring.score_stats import (NULL_KEYS, gini, hill_alpha, matrix_seed, null_tail_stats,
                                            target_score_stats, tensor_score_stats)
from esa.engine.scoring.select import Selector
from esa.engine.models.targets import Target, scored_parameters


def test_gini_known_vectors():
    assert gini(torch.full((10,), 3.0)) == pytest.approx(0.0)
    n = 8
    assert gini(torch.tensor([0.0] * (n - 1) + [5.0])) == pytest.approx((n - 1) / n)
    assert np.isnan(gini(torch.zeros(4)))
    assert np.isnan(gini(torch.tensor([-1.0, 2.0])))


def test_hill_on_pareto():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.pareto(2.0, 100_000) + 1.0)  # classical Pareto(α=2, x_m=1)
    row = tensor_score_stats(x)
    assert row["hill_m"] == 1000
    assert abs(row["hill_alpha"] - 2.0) < 0.2
    top = torch.sort(x, descending=True).values
    assert hill_alpha(top, 1000) == pytest.approx(row["hill_alpha"])


def test_stats_match_numpy_and_chunks():
    rng = np.random.default_rng(1)
    x = rng.lognormal(0, 2, 20_000)
    x[:50] = 0.0
    x[50:60] = np.nan
    x[60] = np.inf
    t = torch.from_numpy(x)
    row = tensor_score_stats(t)
    fin = x[np.isfinite(x)]
    assert row["count"] == 20_000 and row["n_nonfinite"] == 11 and row["n_zero"] == 50
    assert row["mean"] == pytest.approx(fin.mean())
    assert row["median"] == pytest.approx(np.median(fin))
    assert row["p99"] == pytest.approx(np.quantile(fin, 0.99))
    assert row["max"] == pytest.approx(fin.max())
    m1 = int(np.ceil(0.01 * fin.size))
    top1 = np.sort(fin)[::-1][:m1].mean()
    assert row["top1pct_over_median"] == pytest.approx(top1 / np.median(fin))
    counts, _ = np.histogram(np.log10(fin[fin > 0]), bins=HIST_EDGES_LOG10)
    assert row["hist_counts"] == counts.tolist()
    assert sum(row["hist_counts"]) + row["hist_underflow"] + row["hist_overflow"] == fin.size - 50
    chunked = tensor_score_stats(t.float(), chunk=999)
    for key in ("count", "n_nonfinite", "n_zero", "hist_counts", "hill_m"):
        assert chunked[key] == row[key]
    for key in ("median", "mean", "gini", "hill_alpha", "top1pct_over_median"):
        assert chunked[key] == pytest.approx(row[key], rel=1e-5)
    sub = tensor_score_stats(t, exact_limit=1000, subsample=10_000)
    assert sub["quantile_method"] == "subsample:10000"
    assert sub["median"] == pytest.approx(row["median"], rel=0.1)


def test_zero_median_guard():
    row = tensor_score_stats(torch.tensor([0.0] * 90 + [1.0] * 10))
    assert row["median"] == 0 and np.isnan(row["top1pct_over_median"])
    assert row["gini"] == pytest.approx(0.9)


def test_layer_component_summary(tiny_llama):
    targets = scored_parameters(tiny_llama)
    g = torch.Generator().manual_seed(0)
    scores = {t.name: torch.rand(t.shape, generator=g) for t in targets}
    rows = [target_score_stats(t, scores[t.name]) for t in targets]
    sel = Selector(20, "global")
    for t in targets:
        sel.add(t, scores[t.name])
    table = layer_component_summary(rows, sel.result())
    assert len(table) == 14 and table["n_selected"].sum() == 20
    assert table["n_params"].sum() == sum(t.numel for t in targets)
    assert table["share_params"].sum() == pytest.approx(1.0)
    q = table[(table["layer"] == 0) & (table["component"] == "attn_q")].iloc[0]
    assert q["mean_score"] == pytest.approx(float(scores["model.layers.0.self_attn.q_proj.weight"].double().mean()))
    assert isinstance(table, pd.DataFrame)


def _target(name: str, weight: torch.Tensor) -> Target:
    return Target(name, torch.nn.Parameter(weight), 0, "mlp_down", None, tuple(weight.shape))


def test_null_shuffles_the_data_factor_only_among_nonzero_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(50, 40, generator=g, dtype=torch.float64)
    w[0, :10] = 0.0
    data = torch.rand(50, 40, generator=g, dtype=torch.float64) + 0.1
    score = w.abs() ** 2 * data
    score[1, 0] = float("nan")  # left out, like every statistic does
    row = null_tail_stats(score, w, 2, seed=7)
    # Rebuild the null by hand with the same generator: the permutation of the data factor it used.
    gen = torch.Generator().manual_seed(7)
    s, ww = score.reshape(-1), w.reshape(-1)
    ok = torch.isfinite(s)
    s, ww = s[ok], ww[ok]
    wp = ww.abs() ** 2
    movable = wp > 0
    null = s.clone()
    factor = s[movable] / wp[movable]
    null[movable] = wp[movable] * factor[torch.randperm(int(movable.sum()), generator=gen)]
    x = np.sort(null.numpy())
    top = x[-int(np.ceil(0.01 * x.size)):].mean()
    assert row["null_median"] == pytest.approx(np.median(x)) and row["null_top1pct_mean"] == pytest.approx(top)
    assert row["null_top1pct_over_median"] == pytest.approx(top / np.median(x))
    assert (null == 0).sum() == 10  # the zero weights keep their zero score
    # The null keeps the multiset of data factors: only their pairing with |w| changes.
    assert np.sort((null[movable] / wp[movable]).numpy()) == pytest.approx(np.sort(factor.numpy()))
    assert row["null_method"] == "exact" and row["weight_power"] == 2


def test_null_is_seeded_by_seed_and_name_and_subsamples_large_matrices():
    g = torch.Generator().manual_seed(1)
    w, data = torch.randn(100, 100, generator=g), torch.rand(100, 100, generator=g)
    score = w.abs() * data
    a = target_score_stats(_target("a", w), score, metric="grad_x_weight", null_seed=3)
    again = target_score_stats(_target("a", w), score, metric="grad_x_weight", null_seed=3)
    other_name = target_score_stats(_target("b", w), score, metric="grad_x_weight", null_seed=3)
    other_seed = target_score_stats(_target("a", w), score, metric="grad_x_weight", null_seed=4)
    assert a["null_median"] == again["null_median"]
    assert a["null_median"] != other_name["null_median"] and a["null_median"] != other_seed["null_median"]
    assert matrix_seed(3, "a") != matrix_seed(3, "b") != matrix_seed(4, "b")
    sub = null_tail_stats(score, w, 1, seed=0, exact_limit=1000, subsample=5000)
    assert sub["null_method"] == "subsample:5000"
    assert sub["null_median"] == pytest.approx(a["null_median"], rel=0.1)


def test_null_columns_follow_the_metric_weight_power():
    w = torch.randn(30, 30, generator=torch.Generator().manual_seed(2))
    t = _target("m", w)
    mag = target_score_stats(t, w.abs(), metric="magnitude")
    assert mag["null_method"] == "none" and all(np.isnan(mag[k]) for k in NULL_KEYS)
    assert np.isnan(target_score_stats(t, w.abs())["null_median"])  # no metric said: no null
    assert target_score_stats(t, w.abs() * 2, metric="act_mag")["weight_power"] == 1
    obd = target_score_stats(t, w ** 2, metric="hutchinson_diag", hutchinson_mode="obd")
    assert obd["weight_power"] == 2
    # score = w² exactly: the data factor is constant, so the null is the observed matrix itself.
    assert obd["null_top1pct_over_median"] == pytest.approx(obd["top1pct_over_median"])
    assert np.isnan(target_score_stats(t, w.abs(), metric="hutchinson_diag")["null_median"])  # abs mode
