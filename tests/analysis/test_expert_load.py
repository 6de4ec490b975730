"""Sensitivity against traffic in an MoE, on hand-built masses and loads."""

from __future__ import annotations

import pandas as pd
import pytest

from esa.analysis.expert_load import cells, utilisation_vs_sensitivity


def masses(values: dict[tuple[int, int], float]) -> pd.DataFrame:
    rows = [{"layer": layer, "expert": expert, "mass": mass} for (layer, expert), mass in values.items()]
    return pd.DataFrame(rows + [{"layer": 0, "expert": None, "mass": 99.0}])  # a dense matrix: left out


def test_cells_are_within_layer_shares():
    table = cells(masses({(0, 0): 1.0, (0, 1): 3.0, (1, 0): 2.0, (1, 1): 2.0}),
                  {"layers": {0: [0.25, 0.75], 1: [0.9, 0.1]}}).set_index(["layer", "expert"])
    assert table.loc[(0, 1), "sensitivity"] == pytest.approx(0.75) and table.loc[(1, 0), "sensitivity"] == 0.5
    assert table.loc[(1, 1), "utilisation"] == pytest.approx(0.1)


def test_spearman_over_cells_with_a_seed_interval():
    follows = masses({(0, 0): 1.0, (0, 1): 2.0, (0, 2): 3.0, (0, 3): 4.0})
    load = {"layers": {0: [0.1, 0.2, 0.3, 0.4]}}
    against = {"layers": {0: [0.4, 0.3, 0.2, 0.1]}}
    same = utilisation_vs_sensitivity([follows, follows], [load, load])
    assert same["spearman"]["mean"] == pytest.approx(1.0) and same["spearman"]["ci"] == pytest.approx([1.0, 1.0])
    mixed = utilisation_vs_sensitivity([follows, follows, follows], [load, against, load])
    assert mixed["spearman"]["mean"] == pytest.approx(1 / 3) and mixed["spearman"]["ci"][0] < 0 < mixed["spearman"]["ci"][1]
    assert utilisation_vs_sensitivity([follows], [load])["spearman"]["ci"] is None  # one seed: no interval
    assert utilisation_vs_sensitivity([follows], [None]) is None
