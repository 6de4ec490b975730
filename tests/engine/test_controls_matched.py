"""random_matched: each super weight gets a random weight of its matrix with the same binary exponent of |w|."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from esa.engine.perturbation.bitflip import exponent_field
from esa.engine.perturbation.controls import random_k, random_matched, super_set
from esa.engine.scoring.select import Selector
from esa.engine.models.targets import scored_parameters


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


def _rows(name, flat, cols):
    flat = np.asarray(flat)
    return pd.DataFrame({"tensor": name, "layer": pd.array([0] * len(flat), dtype="Int64"), "component": "mlp_down",
                         "expert": pd.array([None] * len(flat), dtype="Int64"), "row": flat // cols,
                         "col": flat % cols, "flat_index": flat, "score": 1.0, "rank": np.arange(len(flat))})


def _matrix(values, dtype=torch.float32):
    w = torch.zeros(4, 8, dtype=dtype)
    w.view(-1)[: len(values)] = torch.tensor(values, dtype=dtype)
    return torch.nn.Parameter(w)


# flat:   0    1    2     3     4    5    6    7     8     9    10   11
VALUES = [4.0, 5.0, 6.0, -7.5, 0.5, 0.6, 0.7, -0.9, 12.0, 1.0, 1.5, 20.0]
# |w| in [4, 8): exponent 2 → {0, 1, 2, 3}; [0.5, 1): -1 → {4, 5, 6, 7}; [1, 2): 0 → {9, 10}; 12: 3; 20: 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_same_exponent_in_rank_order_never_super_zero_or_repeated(dtype):
    w = _matrix(VALUES, dtype)
    sup = _rows("w", [0, 4, 1], 8)  # exponents 2, -1, 2 (rank order)
    picked = set()
    for seed in range(80):
        ctrl = random_matched(sup, {"w": w}, seed)
        got = ctrl.sort_values("rank")["flat_index"].tolist()
        assert got[0] in (2, 3) and got[1] in (5, 6, 7) and got[2] in (2, 3) and got[0] != got[2]
        assert (ctrl["exponent_distance"] == 0).all() and ctrl["score"].isna().all()
        picked |= set(got)
    assert picked == {2, 3, 5, 6, 7}  # every candidate of each bucket is reachable
    a, b = random_matched(sup, {"w": w}, 5), random_matched(sup, {"w": w}, 5)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(sup.columns) + ["exponent_distance"]


def test_a_short_bucket_borrows_from_the_nearest_exponents_after_own_buckets():
    w = _matrix(VALUES)
    # 12.0 (exponent 3) has no other weight of its exponent; 4.0/5.0 (exponent 2) take the two left at 2 first,
    # so 12.0 must go to distance 1 on either side: 20.0 (exponent 4) is the only candidate left there.
    sup = _rows("w", [8, 0, 1], 8)
    for seed in range(20):
        ctrl = random_matched(sup, {"w": w}, seed).sort_values("rank")
        assert ctrl["flat_index"].tolist()[0] == 11 and set(ctrl["flat_index"].tolist()[1:]) == {2, 3}
        assert ctrl["exponent_distance"].tolist() == [1, 0, 0]
    # With 20.0 in the super set too, exponents 2..4 have nothing left once 4.0 and 5.0 took 6.0 and -7.5:
    # 12.0 (exponent 3) is nearest to 1.0 / 1.5 (exponent 0, distance 3; exponent -1 is at 4), and 20.0
    # (exponent 4) then gets the other of them (distance 4) rather than the exponent -1 bucket (distance 5).
    sup = _rows("w", [8, 0, 1, 11], 8)
    ctrl = random_matched(sup, {"w": w}, 0).sort_values("rank")
    assert ctrl["exponent_distance"].tolist() == [3, 0, 0, 4]
    assert {ctrl["flat_index"].iloc[0], ctrl["flat_index"].iloc[3]} == {9, 10}
    with pytest.raises(ValueError, match="cannot draw"):
        random_matched(_rows("w", list(range(8)), 8), {"w": w}, 0)  # 8 super weights, 4 other non-zero ones


def test_large_matrix_matches_exponents_and_uses_its_own_stream():
    g = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(300, 400, generator=g))  # rejection path for the common exponents
    w.data.view(-1)[::3] = 0.0
    flat = w.detach().abs().view(-1)
    sup_idx = torch.cat([torch.topk(flat, 5).indices, torch.arange(1, 3000, 3)[:40]]).numpy()  # rare + common
    sup = _rows("w", sup_idx, 400)
    ctrl = random_matched(sup, {"w": w}, 11).sort_values("rank")
    picks = ctrl["flat_index"].to_numpy()
    expo = exponent_field(w.detach()).view(-1).numpy().astype(int)
    assert len(set(picks)) == len(picks) and not set(picks) & set(sup_idx) and (flat.numpy()[picks] != 0).all()
    np.testing.assert_array_equal(np.abs(expo[picks] - expo[sup_idx]), ctrl["exponent_distance"].to_numpy())
    # a super weight matched at a distance only when its own exponent had no candidate left
    taken = set(picks) | set(sup_idx)
    for e in expo[sup_idx][ctrl["exponent_distance"].to_numpy() > 0]:
        bucket = set(np.flatnonzero((expo == e) & (flat.numpy() != 0)))
        assert bucket <= taken
    assert (ctrl["exponent_distance"].iloc[5:] == 0).all()  # the common exponents are matched exactly
    assert not set(random_k(sup, {"w": w}, 11)["flat_index"]) == set(picks)


def _perturb_stage():
    path = Path(__file__).resolve().parents[2] / "stages" / "perturb.py"
    spec = importlib.util.spec_from_file_location("perturb_stage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_perturb_stage_selections_add_the_matched_control_and_refuse_a_large_k(tiny_llama, tmp_path):
    stage = _perturb_stage()
    top, bottom = Selector(4, "per_layer"), Selector(4, "per_layer", largest=False)
    for t in scored_parameters(tiny_llama):
        top.add(t, t.weight().abs())
        bottom.add(t, t.weight().abs())
    top.result().assign(metric="magnitude", mode="per_layer").to_parquet(tmp_path / "topk.parquet")
    bottom.candidates().assign(metric="magnitude").to_parquet(tmp_path / "bottomk.parquet")
    params = {"scores": {"k": 3, "metric": "magnitude", "mode": "per_layer"},
              "controls": ["random_k", "random_matched", "bottom_k"]}
    chosen = stage.selections(params, tmp_path, tiny_llama, 7)
    assert list(chosen) == ["super", "random_k", "random_matched", "bottom_k"]
    assert all(len(s) == len(chosen["super"]) for s in chosen.values())
    summary = stage.matched_summary(chosen)
    assert summary["n_same_exponent"] + summary["n_neighbour_exponent"] == len(chosen["super"])
    sup = super_set(pd.read_parquet(tmp_path / "topk.parquet"), 3)
    pd.testing.assert_frame_equal(chosen["random_matched"], random_matched(sup, dict(tiny_llama.named_parameters()), 7))
    with pytest.raises(ValueError, match="k=5 exceeds the 4"):
        stage.selections({**params, "scores": {**params["scores"], "k": 5}}, tmp_path, tiny_llama, 7)
    # level-free seeds, fixed per target: super/random_k/bottom_k keep the first level's old seeds
    assert [stage.condition_seed(7, t) for t in ("super", "random_k", "bottom_k", "random_matched")] == \
        [7000, 7001, 7002, 7003]
