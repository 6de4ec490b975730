import numpy as np
import pandas as pd
import pytest
from scipy import stats

from esa.analysis.hotspots import MERGED, hotspots


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
