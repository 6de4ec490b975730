"""Architecture comparison on small constructed score tables: group shares and enrichment, the depth axis, expert
balance and router sensitivity, two-model differences with their permutation p, and the base → instruct top-k
shift against its chance value."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from architecture_tables import dense_stats, moe_stats, seeds_of, shift_tables, stats_row

from esa.analysis.architecture import analyze_architecture, model_summary, share_difference
from esa.analysis.architecture_shift import topk_shift
from esa.analysis.seed_resampling import difference_ci, mean_stat, model_draws, permutation_p

DRAWS = 400


def test_group_shares_and_enrichment_match_a_hand_count():
    # masses: embed 100, attention 2·100·3 = 600, mlp 2·300·1 = 600 → total 1300; parameters 100, 200, 600 of 900
    summary = model_summary(seeds_of(dense_stats(attn_mean=3.0)), draws=DRAWS)
    groups = summary["groups"]
    assert groups["attention"]["share"]["mean"] == pytest.approx(600 / 1300)
    assert groups["mlp"]["share"]["mean"] == pytest.approx(600 / 1300)
    assert groups["other"]["share"]["mean"] == pytest.approx(100 / 1300)
    assert groups["attention"]["param_share"] == pytest.approx(200 / 900)
    assert groups["attention"]["enrichment"]["mean"] == pytest.approx((600 / 1300) / (200 / 900))
    assert groups["router"]["share"]["mean"] == 0 and groups["router"]["enrichment"]["mean"] is None
    assert groups["attention"]["share"]["ci"] is None  # one seed: no CI, never an invented one
    assert summary["moe"] is None and summary["n_layers"] == 2


def test_non_finite_entries_do_not_count_as_mass():
    frame = dense_stats()
    frame.loc[frame["component"] == "attn_q", "n_nonfinite"] = 50  # attention mass 2·50·1 = 100
    groups = model_summary(seeds_of(frame))["groups"]
    assert groups["attention"]["share"]["mean"] == pytest.approx(100 / (100 + 100 + 600))
    assert groups["attention"]["param_share"] == pytest.approx(200 / 900)  # parameters are all entries


def test_layers_sit_on_a_depth_normalised_axis():
    frame = dense_stats(layers=4)
    frame.loc[frame["layer"] == 3, "mean"] = 5.0  # last layer: mass 2000 of 400·3 + 2000 = 3200
    layers = model_summary(seeds_of(frame))["layers"]
    assert [row["depth"] for row in layers] == [0.125, 0.375, 0.625, 0.875]
    assert layers[3]["share"]["mean"] == pytest.approx(2000 / 3200)
    assert layers[3]["param_share"] == pytest.approx(0.25)
    assert layers[3]["enrichment"]["mean"] == pytest.approx(2.5)
    assert sum(row["share"]["mean"] for row in layers) == pytest.approx(1.0)


def test_expert_shares_ratio_and_router_sensitivity():
    moe = model_summary(seeds_of(moe_stats(), moe_stats()), draws=DRAWS)["moe"]
    # expert masses 200, 200, 400, 800 of 1600; router mass 400 of 100 + 400 + 1600 = 2100, parameters 40 of 940
    assert moe["n_experts"] == 4
    assert [e["share"]["mean"] for e in moe["experts"]] == pytest.approx([0.125, 0.125, 0.25, 0.5])
    assert moe["max_min_ratio"]["mean"] == pytest.approx(4.0)
    assert moe["per_layer"][0]["max_min_ratio"]["mean"] == pytest.approx(4.0)
    assert moe["router"]["share"]["mean"] == pytest.approx(400 / 2100)
    assert moe["router"]["sensitivity"]["mean"] == pytest.approx((400 / 2100) / (40 / 940))
    assert moe["router"]["sensitivity"]["ci"] == pytest.approx([(400 / 2100) / (40 / 940)] * 2)


def test_ci_over_seeds_covers_the_true_mean():
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(20):
        values = 0.3 + 0.05 * rng.standard_normal(8)
        lo, hi = mean_stat(values, model_draws(8, 1000, trial), 0.95)["ci"]
        covered += lo <= 0.3 <= hi
    assert covered >= 17  # t-intervals: about 19 of 20
    assert mean_stat([0.2], model_draws(1))["ci"] is None


def test_permutation_p_is_exact_on_a_tiny_case():
    # 3 seeds each, a entirely above b: 1 of C(6, 3) = 20 splits is as extreme
    p = permutation_p([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])
    assert p["exact"] and p["n_relabelings"] == 20
    assert p["p_greater"] == pytest.approx(1 / 20) and p["min_p"] == pytest.approx(1 / math.comb(6, 3))
    assert p["p_two_sided"] == pytest.approx(2 / 20) and p["p_less"] == pytest.approx(1.0)
    # brute force on a mixed case: count splits whose difference of means reaches the observed one
    a, b = [1.0, 4.0, 2.5], [2.0, 3.0, 0.5]
    pooled, observed = np.array(a + b), np.mean(a) - np.mean(b)
    diffs = [pooled[list(c)].mean() - np.delete(pooled, list(c)).mean() for c in combinations(range(6), 3)]
    assert permutation_p(a, b)["p_greater"] == pytest.approx(np.mean(np.array(diffs) >= observed - 1e-12))
    assert not permutation_p(list(range(12)), list(range(12)), limit=1000)["exact"]


def test_share_difference_resamples_each_model_and_reads_back_reversed():
    models = {"attn_heavy": seeds_of(*(dense_stats(attn_mean=m) for m in (3.0, 3.2, 2.8))),
              "flat": seeds_of(*(dense_stats(attn_mean=m) for m in (1.0, 1.1, 0.9)))}
    out = analyze_architecture(models, metric="grad_x_weight", draws=DRAWS)
    forward = out["differences"]["attn_heavy"]["flat"]["attention"]
    a = out["models"]["attn_heavy"]["groups"]["attention"]["share"]["mean"]
    b = out["models"]["flat"]["groups"]["attention"]["share"]["mean"]
    assert forward["value"] == pytest.approx(a - b) and forward["ci"][0] > 0
    assert forward["permutation"]["p_greater"] == pytest.approx(1 / 20)
    back = out["differences"]["flat"]["attn_heavy"]["attention"]
    assert back["value"] == pytest.approx(-forward["value"]) and back["ci"] == [-forward["ci"][1], -forward["ci"][0]]
    assert back["permutation"]["p_less"] == forward["permutation"]["p_greater"]
    assert out["bootstrap"]["draws"] == DRAWS and out["bootstrap"]["rng_seed"] == 2000
    single = share_difference(out["models"]["attn_heavy"], model_summary(seeds_of(dense_stats())), "attention")
    assert single["ci"] is None and single["value"] is not None


def test_difference_ci_covers_the_true_difference():
    rng = np.random.default_rng(3)
    hits = sum(lo <= 0.1 <= hi for lo, hi in
               (difference_ci(0.4 + 0.03 * rng.standard_normal(6), 0.3 + 0.03 * rng.standard_normal(6), 800, t)
                for t in range(20)))
    assert hits >= 17


# ---------------------------------------------------------------- base → instruct shift

def test_jaccard_and_kept_shares_by_hand():
    stats, topk = shift_tables(n=50)
    base = topk([[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]])
    instruct = topk([[0, 1, 2, 3, 4], [10, 11, 20, 21, 22]])  # attention kept whole, MLP keeps 2 of 5
    out = topk_shift({"s0": (stats, base), "s1": (stats, base)}, {"s0": (stats, instruct), "s1": (stats, instruct)},
                     k=5, draws=DRAWS)
    assert out["jaccard"]["mean"] == pytest.approx(7 / 13)  # |∩| = 5 + 2, |∪| = 5 + 8
    assert out["components"]["attn_q"]["kept"]["mean"] == pytest.approx(1.0)
    assert out["components"]["mlp_up"]["kept"]["mean"] == pytest.approx(0.4)
    # chance: E|A∩B| = 5·5/50 = 0.5 per matrix → 1 / (20 − 1)
    assert out["chance_jaccard"]["mean"] == pytest.approx(1 / 19)
    assert out["components"]["mlp_up"]["chance_kept"]["mean"] == pytest.approx(0.1)
    assert out["n_seeds"] == 2 and out["jaccard"]["ci"] == pytest.approx([7 / 13, 7 / 13])
    smaller = topk_shift({"s0": (stats, base)}, {"s0": (stats, instruct)}, k=2)
    assert smaller["jaccard"]["mean"] == pytest.approx(1.0) and smaller["jaccard"]["ci"] is None


def test_chance_jaccard_matches_random_subsets():
    sizes, k = [40, 80, 120, 60], 8
    matrices = tuple(f"model.layers.{i}.mlp.up_proj.weight" for i in range(len(sizes)))
    stats = pd.DataFrame([stats_row(t, i, "mlp_up", n, 1.0) for i, (t, n) in enumerate(zip(matrices, sizes))])
    rng = np.random.default_rng(11)

    def random_topk():
        return pd.DataFrame([{"metric": "grad_x_weight", "mode": "per_layer", "tensor": t, "layer": i,
                              "component": "mlp_up", "expert": None, "row": 0, "col": int(j), "flat_index": int(j),
                              "score": 1.0, "rank": r}
                             for i, (t, n) in enumerate(zip(matrices, sizes))
                             for r, j in enumerate(rng.choice(n, size=k, replace=False))])
    seeds = range(300)
    base = {s: (stats, random_topk()) for s in seeds}
    instruct = {s: (stats, random_topk()) for s in seeds}
    out = topk_shift(base, instruct, k=k, draws=DRAWS)
    expected = sum(k * k / n for n in sizes)
    assert out["chance_jaccard"]["mean"] == pytest.approx(expected / (2 * k * len(sizes) - expected))
    assert out["jaccard"]["mean"] == pytest.approx(out["chance_jaccard"]["mean"], rel=0.05)
    lo, hi = out["jaccard_over_chance"]["ci"]
    assert lo <= 1.0 <= hi


def test_shift_keys_experts_apart():
    stats = pd.DataFrame([stats_row("model.layers.0.mlp.experts.gate_up_proj", 0, "mlp_gate_up", 20, 1.0, expert=e)
                          for e in (0, 1)])
    rows = [{"metric": "grad_x_weight", "mode": "per_layer", "tensor": "model.layers.0.mlp.experts.gate_up_proj",
             "layer": 0, "component": "mlp_gate_up", "expert": e, "row": 0, "col": i, "flat_index": 20 * e + i,
             "score": 1.0, "rank": i} for e in (0, 1) for i in range(2)]
    base = pd.DataFrame(rows)
    out = topk_shift({"s": (stats, base)}, {"s": (stats, base)}, k=2)
    assert out["jaccard"]["mean"] == 1.0
    assert out["chance_jaccard"]["mean"] == pytest.approx(0.4 / (8 - 0.4))  # 2·(2·2/20) over 2·4 − 0.4


def test_expert_balance_is_judged_within_layers():
    """Layer 0 favours expert 3, layer 1 expert 0: pooled by index they look even, within each layer they are 4:1."""
    layer1 = moe_stats(expert_means=(4.0, 1.0, 1.0, 1.0)).assign(layer=1)
    layer1["tensor"] = layer1["tensor"].str.replace("layers.0", "layers.1")
    frame = pd.concat([moe_stats(expert_means=(1.0, 1.0, 1.0, 4.0)), layer1], ignore_index=True)
    moe = model_summary(seeds_of(frame, frame))["moe"]
    assert [e["share"]["mean"] for e in moe["experts"]] == pytest.approx([5 / 14, 2 / 14, 2 / 14, 5 / 14])
    assert [layer["max_min_ratio"]["mean"] for layer in moe["per_layer"]] == pytest.approx([4.0, 4.0])
    assert moe["max_min_ratio"]["mean"] == pytest.approx(4.0)
