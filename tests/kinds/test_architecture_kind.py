"""Run kind `architecture`: its compile rule (no stage; the grade stage reads the compared models' score outputs),
the shares and the base → tuned shift recomputed here from the score runs' own files, and its graders' outcomes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes
from safetensors.numpy import load_file

MODELS = ["m1", "m2", "m3", "m4", "moe", "m4-tuned"]


@pytest.fixture(scope="module")
def compared(kinds_project):
    root = kinds_project.run("grade.phase4")
    return root, json.loads((root / "results/phase4/analysis.json").read_text())["runs"]["arch"]


def test_compile_rule_adds_no_stage_and_reads_every_compared_models_stats(kinds_project):
    stages = kinds_project.stages
    assert not [name for name in stages if "/arch" in name]
    for name in MODELS:
        assert f"results/phase4/sc-{name}/seed1/tensor_stats.parquet" in stages["grade.phase4"]["deps"]


def test_attention_share_is_the_attention_matrices_share_of_the_saved_score_mass(compared):
    root, summary = compared
    for name in ("m2", "moe"):
        shares = []
        for seed in (1, 2):
            tensors = load_file(str(root / f"results/phase4/sc-{name}/seed{seed}/scores/grad_x_weight.safetensors"))
            mass = {key: float(np.abs(t).sum()) for key, t in tensors.items()}
            shares.append(sum(v for k, v in mass.items() if ".self_attn." in k) / sum(mass.values()))
        attention = summary["models"][f"./ladder/{name}"]["groups"]["attention"]["share"]
        assert attention["per_seed"] == pytest.approx(shares, rel=1e-5)
        assert attention["mean"] == pytest.approx(np.mean(shares), rel=1e-5)


def test_the_moe_has_router_and_expert_shares_and_the_dense_models_do_not(compared):
    _, summary = compared
    moe = summary["models"]["./ladder/moe"]["moe"]
    assert moe["n_experts"] == 4 and len(moe["experts"]) == 4
    assert sum(e["share"]["mean"] for e in moe["experts"]) == pytest.approx(1.0)
    assert summary["models"]["./ladder/m2"]["moe"] is None
    follows = moe["utilisation"]
    assert follows["n_seeds"] == 2 and len(follows["cells"]) == 2 * 4  # two layers, four experts
    for layer in (0, 1):
        load = [c["utilisation"]["mean"] for c in follows["cells"] if c["layer"] == layer]
        assert sum(load) == pytest.approx(1.0)


def test_shift_jaccard_recomputed_from_both_models_top_k(compared):
    root, summary = compared
    shift = summary["shifts"]["tune"]
    for i, seed in enumerate((1, 2)):
        sets = []
        for name in ("m4", "m4-tuned"):
            frame = pd.read_parquet(root / f"results/phase4/sc-{name}/seed{seed}/topk.parquet")
            rows = frame[(frame["metric"] == "grad_x_weight") & (frame["mode"] == "per_layer") & (frame["rank"] < 4)]
            sets.append(set(zip(rows["tensor"], rows["flat_index"])))
        assert shift["jaccard"]["per_seed"][i] == pytest.approx(len(sets[0] & sets[1]) / len(sets[0] | sets[1]))
    assert shift["jaccard_over_chance"]["mean"] > 1  # a lightly moved copy keeps far more than chance


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["architecture"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
