"""Run kind `score`: the scoring stage on ref-tiny (its selections against its own saved score tensors), its
compile rule, and its graders' outcomes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes
from safetensors.torch import load_file

STAGE = "score.phase2/sc/seed1"
K = 8


@pytest.fixture(scope="module")
def scored(kinds_project):
    out = kinds_project.run(STAGE)
    scores = {m: {n: t.double().numpy().reshape(-1) for n, t in load_file(str(out / f"scores/{m}.safetensors")).items()}
              for m in ("grad_x_weight", "magnitude")}
    return out, pd.read_parquet(out / "topk.parquet"), scores


def test_selected_scores_are_the_saved_tensors_values(scored):
    _, topk, scores = scored
    assert set(topk["metric"]) == {"grad_x_weight", "magnitude"} and set(topk["mode"]) == {"per_layer", "global"}
    for (metric, tensor), rows in topk.groupby(["metric", "tensor"]):
        saved = scores[metric][tensor]
        assert np.array_equal(rows["score"].to_numpy(), saved[rows["flat_index"].to_numpy()])
    assert (topk["score"] != 0).all() and np.isfinite(topk["score"]).all()  # top-k never takes a zero score


def test_per_layer_ranks_are_each_matrix_top_k(scored):
    _, topk, scores = scored
    per_layer = topk[topk["mode"] == "per_layer"]
    for (metric, tensor), rows in per_layer.groupby(["metric", "tensor"]):
        saved = scores[metric][tensor]
        eligible = np.flatnonzero(np.isfinite(saved) & (saved != 0))
        expected = eligible[np.lexsort((eligible, -saved[eligible]))][:K]  # score desc, then flat index
        rows = rows.sort_values("rank")
        assert rows["rank"].tolist() == list(range(len(expected)))
        assert rows["flat_index"].tolist() == expected.tolist()


def test_global_ranks_are_the_top_k_over_all_matrices(scored):
    _, topk, scores = scored
    for metric, tensors in scores.items():
        rows = topk[(topk["mode"] == "global") & (topk["metric"] == metric)].sort_values("rank")
        assert rows["rank"].tolist() == list(range(K))
        assert (np.diff(rows["score"].to_numpy()) <= 0).all()
        everything = np.concatenate(list(tensors.values()))
        best = np.sort(everything[np.isfinite(everything) & (everything != 0)])[::-1][:K]
        assert np.array_equal(rows["score"].to_numpy(), best)


def test_magnitude_scores_are_the_weights(scored, ref_tiny):
    from esa.engine.models.loading import load_model

    _, _, scores = scored
    model, _ = load_model(str(ref_tiny))
    params = dict(model.named_parameters())
    for name, saved in scores["magnitude"].items():
        assert np.array_equal(saved, params[name].detach().double().abs().numpy().reshape(-1)), name


def test_summary_and_stats_describe_the_run(scored):
    out, topk, scores = scored
    summary = json.loads((out / "summary.json").read_text())
    stats = pd.read_parquet(out / "tensor_stats.parquet")
    assert summary["n_windows"] == 4 and summary["scores_saved"] is True
    assert summary["n_scored_tensors"] == len(scores["grad_x_weight"]) == stats["tensor"].nunique()
    assert summary["n_scored_weights"] == sum(len(v) for v in scores["grad_x_weight"].values())
    per_layer = topk[(topk["mode"] == "per_layer")]
    counts = per_layer.groupby(["metric", "tensor"]).size()
    stats = stats.set_index(["metric", "tensor"])
    assert (stats.loc[counts.index, "per_layer_n_selected"] == counts).all()


def test_compile_emits_one_stage_per_seed_writing_what_ablation_and_perturb_read(kinds_project):
    stages = kinds_project.stages
    assert sorted(n for n in stages if n.startswith("score.phase2/")) == ["score.phase2/sc/seed1", "score.phase2/sc/seed2"]
    params = kinds_project.params["phase2"]["sc"]
    assert params["k_grid"] == [2, 4, 8] and params["seed_plan"] == [1, 2] and params["topk"] == K
    for seed in (1, 2):
        stage, out = stages[f"score.phase2/sc/seed{seed}"], f"results/phase2/sc/seed{seed}"
        assert f"--seed {seed} " in stage["cmd"] and stage["cmd"].endswith(f"--out {out}")
        assert {f"{out}/topk.parquet", f"{out}/bottomk.parquet", f"{out}/scores", f"{out}/summary.json"} \
            <= set(stage["outs"]) and "metrics" not in stage
        assert {f"{out}/summary.json", f"{out}/topk.parquet", f"{out}/tensor_stats.parquet"} \
            <= set(stages["grade.phase2"]["deps"])
    assert set(stages["grade.phase2"]["outs"]) == {"results/phase2/analysis.json",
                                                   "results/phase2/stability_vs_k.parquet"}


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["score"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
