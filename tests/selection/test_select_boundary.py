"""Top-k never selects from zero or infinite scores; the tie block at the k-th value is counted and flagged."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from esa.engine.scoring.select import Selector, select_in_tensor
from esa.engine.models.targets import scored_parameters


def test_all_zero_scores_select_nothing_for_top_k_but_bottom_k_still_works(tiny_llama):
    """A detector that found nothing scores every weight 0: no top-k set may be built from that."""
    targets = scored_parameters(tiny_llama)
    for mode in ("per_layer", "global"):
        sel = Selector(10, mode)
        for t in targets:
            sel.add(t, torch.zeros(t.shape))
        assert len(sel.result()) == 0
        summary = sel.summary()
        assert (summary["n_selected"] == 0).all() and (summary["n_eligible"] == 0).all()
        assert (summary["n_zero_score"] == summary["numel"]).all()
        assert summary["kth_value"].isna().all() and not summary["boundary_in_tie_block"].any()
    bottom = Selector(3, "per_layer", largest=False)
    bottom.add(targets[0], torch.zeros(targets[0].shape))
    assert len(bottom.result()) == 3  # zero scores are genuinely lowest there


def test_infinite_and_zero_scores_are_not_eligible_for_top_k():
    s = torch.tensor([0.0, float("inf"), 2.0, float("-inf"), -1.0, 0.0, float("nan"), 5.0])
    sel = select_in_tensor(s, 10)
    assert sel.indices.tolist() == [7, 2, 4]  # a negative score is a real score, zero and ±inf are not
    assert (sel.n_nan, sel.n_inf, sel.n_zero, sel.n_eligible) == (1, 2, 2, 3)
    low = select_in_tensor(s, 10, largest=False)
    assert low.indices.tolist() == [3, 4, 0, 5, 2, 7, 1]  # bottom-k keeps its semantics (only NaN dropped)


@pytest.mark.parametrize("scores, k, kth, tied, taken, flag", [
    ([5, 3, 3, 3, 3, 1], 3, 3.0, 4, 2, True),  # two tied entries left out: the cut is arbitrary
    ([5, 3, 3, 1], 2, 3.0, 2, 1, False),  # one left out: below the flag's threshold
    ([5, 4, 3, 1], 3, 3.0, 1, 1, False),
    ([5, 4], 3, 4.0, 1, 1, False),  # fewer eligible than k: everything is taken
    ([2, 2, 2, 2, 2, 2], 1, 2.0, 6, 1, True),
])
@pytest.mark.parametrize("chunk", [1 << 24, 2])
def test_boundary_of_one_matrix(scores, k, kth, tied, taken, flag, chunk):
    sel = select_in_tensor(torch.tensor(scores, dtype=torch.float32), k, chunk=chunk)
    assert (sel.kth, sel.n_tied, sel.n_tied_taken, sel.boundary_in_tie_block) == (kth, tied, taken, flag)


def _fake_targets(tiny_llama, n):
    return scored_parameters(tiny_llama)[:n]


def test_global_boundary_hand_computed(tiny_llama):
    """Two matrices, k=3: 9 (A) and 7 (B) are taken, then one of five 2s; A's name sorts first, so A's first 2."""
    a, b = sorted(_fake_targets(tiny_llama, 2), key=lambda t: t.name)
    sa, sb = torch.zeros(a.shape), torch.zeros(b.shape)
    sa.view(-1)[:4] = torch.tensor([9.0, 2.0, 2.0, 2.0])
    sb.view(-1)[:3] = torch.tensor([2.0, 2.0, 7.0])
    for order in ((a, sa), (b, sb)), ((b, sb), (a, sa)):
        sel = Selector(3, "global")
        for t, s in order:
            sel.add(t, s)
        res = sel.result()
        assert res["score"].tolist() == [9.0, 7.0, 2.0] and res["flat_index"].tolist() == [0, 2, 1]
        summary = sel.summary().set_index("tensor")
        assert (summary["kth_value"] == 2.0).all()
        assert summary.loc[a.name, "n_tied_at_boundary"] == 3 and summary.loc[a.name, "n_tied_taken"] == 1
        assert summary.loc[b.name, "n_tied_at_boundary"] == 2 and summary.loc[b.name, "n_tied_taken"] == 0
        assert summary["boundary_in_tie_block"].all()


def _brute_boundary(targets, scores, k, mode):
    """Per matrix (k-th value, eligible entries equal to it, taken) from a full sort; global: one shared k-th."""
    rows = []
    for t in targets:
        s = t.view(scores[t.name]).reshape(-1).double().numpy()
        s = s[np.isfinite(s) & (s != 0)]
        rows.append(pd.DataFrame({"tensor": t.name, "score": s, "i": np.arange(len(s))}))
    df = pd.concat(rows, ignore_index=True)
    out = {}
    if mode == "per_layer":
        for t in targets:
            v = np.sort(df[df["tensor"] == t.name]["score"].to_numpy())[::-1]
            top = v[:k]
            kth = top[-1] if len(top) else np.nan
            out[t.name] = (kth, int((v == kth).sum()), int((top == kth).sum()))
        return out
    order = np.lexsort((df["i"].to_numpy(), df["tensor"].to_numpy(), -df["score"].to_numpy()))
    top = df.iloc[order[:k]]
    kth = top["score"].iloc[-1]
    for t in targets:
        mine = df[df["tensor"] == t.name]
        out[t.name] = (kth, int((mine["score"] == kth).sum()), int((top[top["tensor"] == t.name]["score"] == kth)
                                                                   .sum()))
    return out


@pytest.mark.parametrize("mode", ["per_layer", "global"])
@pytest.mark.parametrize("seed, shift", [(0, 0), (1, 0), (2, 1), (3, 1)])
def test_boundary_matches_a_full_sort(tiny_llama, mode, seed, shift):
    targets = _fake_targets(tiny_llama, 5)
    g = torch.Generator().manual_seed(seed)
    # Few distinct values (zeros included): large tie blocks inside and across matrices. With a shift each matrix
    # has its own range, so the global k-th value changes as matrices arrive in different orders.
    scores = {t.name: torch.randint(0, 4, t.shape, generator=g).float() + shift * j for j, t in enumerate(targets)}
    k = 40
    expect = _brute_boundary(targets, scores, k, mode)
    for arrival in itertools.islice(itertools.permutations(targets), 0, 24, 5):
        sel = Selector(k, mode, chunk=97)
        for t in arrival:
            sel.add(t, scores[t.name])
        summary = sel.summary().set_index("tensor")
        for name, (kth, tied, taken) in expect.items():
            row = summary.loc[name]
            assert (row["kth_value"], row["n_tied_at_boundary"], row["n_tied_taken"]) == (kth, tied, taken), name
        left = sum(tied - taken for _, tied, taken in expect.values())
        if mode == "global":
            assert summary["boundary_in_tie_block"].all() == (left > 1) and left > 1
        else:
            assert summary["boundary_in_tie_block"].tolist() == [expect[n][1] - expect[n][2] > 1
                                                                 for n in summary.index]


def _score_stage():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "stages" / "score.py"
    spec = importlib.util.spec_from_file_location("score_stage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Result:
    def __init__(self, scores):
        self.scores = scores

    def score(self, metric, name):
        return self.scores.get(name)


def test_score_stage_writes_each_modes_boundary_into_tensor_stats(tiny_llama):
    stage = _score_stage()
    targets = _fake_targets(tiny_llama, 3)
    zero = {t.name: torch.zeros(t.shape) for t in targets}  # "none found": nothing may be selected
    topk, _, stats, _, _ = stage.select_and_describe(_Result(zero), targets, "superweight",
                                                     {"topk": 10, "modes": ["per_layer", "global"]})
    assert len(topk) == 0
    assert (stats["per_layer_n_selected"] == 0).all() and (stats["global_n_selected"] == 0).all()
    assert not stats["per_layer_boundary_in_tie_block"].any() and stats["global_kth_value"].isna().all()
    # one matrix with six equal top scores, k=2: its per-layer cut leaves four tied weights out
    tied = {t.name: torch.arange(1, t.numel + 1, dtype=torch.float32).reshape(t.shape) for t in targets}
    first = targets[0]
    tied[first.name].view(-1)[:6] = 1e6
    _, _, stats, _, _ = stage.select_and_describe(_Result(tied), targets, "magnitude", {"topk": 2, "modes": ["per_layer"]})
    row = stats.set_index("tensor").loc[first.name]
    assert (row["per_layer_kth_value"], row["per_layer_n_tied_at_boundary"], row["per_layer_n_tied_taken"]) == \
        (1e6, 6, 2)
    assert row["per_layer_boundary_in_tie_block"]
    assert stats["per_layer_boundary_in_tie_block"].sum() == 1
