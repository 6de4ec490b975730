import numpy as np
import pandas as pd
import pytest
from scipy import stats

from esa.analysis.hotspots import MERGED, hotspot_enrichment, hotspots


def test_chisquare_matches_scipy_hand_case():
    params = pd.DataFrame({"layer": [0, 1, 2, 3], "n_params": [100, 100, 200, 600]})
    observed = [30, 10, 20, 40]
    selected = pd.DataFrame({"layer": np.repeat([0, 1, 2, 3], observed), "component": "mlp_down"})
    res = hotspots(selected, params, "layer")
    expected = [10, 10, 20, 60]
    ref = stats.chisquare(observed, expected)
    assert res.statistic == pytest.approx(ref.statistic) and res.pvalue == pytest.approx(ref.pvalue)
    assert res.dof == 3 and res.merged == []
    t = res.table
    assert t["expected"].tolist() == pytest.approx(expected)
    assert t["pearson_residual"].tolist() == pytest.approx([(o - e) / np.sqrt(e) for o, e in zip(observed, expected)])
    assert t["std_residual"].iloc[0] == pytest.approx(20 / np.sqrt(10 * 0.9))


def test_small_cells_are_pooled_and_none_layer_kept():
    params = pd.DataFrame({"layer": [None, 0, 1, 2], "component": ["lm_head", "attn_q", "attn_q", "attn_q"],
                           "numel": [10, 10, 490, 490]})
    selected = pd.DataFrame({"layer": [None] * 3 + [1] * 40 + [2] * 57, "component": "x"})
    res = hotspots(selected, params, "layer")
    # expected: none 1, layer0 1, layer1 49, layer2 49 → the two small cells are pooled (pool E = 2 < 5 → also
    # takes the next smallest)
    assert len(res.merged) == 3 and set(res.table["test_cell"]) >= {MERGED}
    obs = [3 + 0 + 40, 57]
    exp = [1 + 1 + 49, 49]
    ref = stats.chisquare(obs, exp)
    assert res.statistic == pytest.approx(ref.statistic) and res.dof == 1
    assert "none" in set(res.table["cell"])


def test_unknown_cell_rejected():
    params = pd.DataFrame({"component": ["attn_q"], "n_params": [10]})
    with pytest.raises(ValueError):
        hotspots(pd.DataFrame({"component": ["mlp_up"]}), params, "component")


def _picked(seed_counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"component": [c for c, n in seed_counts.items() for _ in range(n)]})


PARAMS = pd.DataFrame({"component": ["attn_q", "mlp_up", "mlp_down", "embed"], "n_params": [100, 300, 600, 0]})


def test_enrichment_per_seed_top_cell_and_ci():
    by_seed = {1: _picked({"attn_q": 5, "mlp_up": 3, "mlp_down": 2}), 2: _picked({"attn_q": 3, "mlp_down": 7}),
               3: _picked({"attn_q": 1, "mlp_up": 3, "mlp_down": 6})}
    res = hotspot_enrichment(by_seed, PARAMS, "component", n_null=500, n_boot=500)
    t = res.table.set_index("cell")
    assert "embed" not in t.index  # no parameters, no cell
    # attn_q: shares 0.5, 0.3, 0.1 of the selection against 0.1 of the parameters → 5, 3, 1.
    assert t.loc["attn_q", ["seed_1", "seed_2", "seed_3"]].tolist() == pytest.approx([5, 3, 1])
    assert res.top_cell == "attn_q" and res.value == pytest.approx(3.0) and res.n_selected == [10, 10, 10]
    # Resampled seeds' largest mean lies between the cell's seed values (the other cells stay far below 1).
    assert 1.0 <= res.ci_low <= 3.0 <= res.ci_high <= 5.0 and res.note == ""
    # Null: 10 draws per seed over shares 0.1/0.3/0.6 rarely put 3× the share into a cell on average.
    assert 1.0 < res.null_p95 < 3.0 and res.n_null == 500
    d = res.as_dict()
    assert d["cells"][0]["per_seed"] == pytest.approx([5, 3, 1]) and d["value"] == res.value


def test_enrichment_null_matches_a_hand_case_and_one_seed_has_no_ci():
    params = pd.DataFrame({"component": ["a", "b"], "n_params": [50, 50]})
    res = hotspot_enrichment({1: _picked({"a": 1})}, params, "component", n_null=200)
    # One weight drawn into one of two equal cells: that cell always has enrichment 2.
    assert res.value == 2.0 and res.null_p95 == 2.0
    assert np.isnan(res.ci_low) and "needs ≥ 2 seeds" in res.note
    empty = hotspot_enrichment({1: _picked({}), 2: _picked({"a": 1})}, params, "component")
    assert np.isnan(empty.value) and empty.note == "no selected weights"
    with pytest.raises(ValueError):
        hotspot_enrichment({1: _picked({"zzz": 1})}, params, "component")


def test_enrichment_by_layer_keeps_the_no_layer_cell():
    params = pd.DataFrame({"layer": [None, 0, 1], "n_params": [200, 400, 400]})
    picked = pd.DataFrame({"layer": [None] * 6 + [0] * 2 + [1] * 2})
    res = hotspot_enrichment({1: picked, 2: picked}, params, "layer", n_null=100)
    assert res.top_cell == "none" and res.value == pytest.approx(3.0)
    assert [res.ci_low, res.ci_high] == pytest.approx([3.0, 3.0])
