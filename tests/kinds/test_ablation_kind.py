"""Run kind `ablation_check`: the ablation stage on ref-tiny against the score run's saved tensors (and the real
damage of zeroing a weight, recomputed here), its compile rule, and its grader's outcomes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes
from safetensors.torch import load_file
from scipy import stats

STAGE = "ablation.phase2/abl/seed1"
TOP, N_RANDOM = 3, 5


@pytest.fixture(scope="module")
def ablated(kinds_project):
    out = kinds_project.run(STAGE)
    scores_dir = kinds_project.root / "results/phase2/sc/seed1"
    scores = {m: load_file(str(scores_dir / f"scores/{m}.safetensors")) for m in ("grad_x_weight", "magnitude")}
    return out, pd.read_parquet(out / "ablation.parquet"), scores


def global_top(tensors: dict, n: int) -> set[tuple[str, int]]:
    flat = [(float(v), name, i) for name, t in tensors.items() for i, v in enumerate(t.reshape(-1).tolist())]
    return {(name, i) for _, name, i in sorted(flat, key=lambda x: (-x[0], x[1], x[2]))[:n]}


def test_sample_is_every_metrics_top_plus_a_uniform_draw(ablated):
    _, frame, scores = ablated
    sampled = set(zip(frame["tensor"], frame["flat_index"]))
    head = set().union(*(global_top(t, TOP) for t in scores.values()))
    top = frame[frame["sample"] == "top"]
    assert set(zip(top["tensor"], top["flat_index"])) == head
    assert (frame["sample"] == "random").sum() == N_RANDOM and len(sampled) == len(frame) == len(head) + N_RANDOM


def test_calibration_scores_are_read_from_the_score_runs_tensors(ablated, ref_tiny):
    from esa.engine.models.loading import load_model

    _, frame, scores = ablated
    params = dict(load_model(str(ref_tiny))[0].named_parameters())
    for metric, tensors in scores.items():
        saved = [float(tensors[t].reshape(-1)[i]) for t, i in zip(frame["tensor"], frame["flat_index"])]
        assert np.array_equal(frame[f"score_{metric}_calibration"].to_numpy(), np.array(saved, dtype=float))
    weights = [float(params[t].detach().reshape(-1)[i]) for t, i in zip(frame["tensor"], frame["flat_index"])]
    assert frame["weight"].tolist() == weights and (frame["weight"] != 0).all()
    assert np.allclose(frame["score_magnitude_calibration"], np.abs(frame["weight"]))


def test_delta_nll_is_the_damage_of_zeroing_that_weight(kinds_project, ablated, ref_tiny):
    """Recompute the worst weight's damage here, on the windows the stage recorded in sampling.json."""
    from esa.engine.scoring.ablation import make_batches, total_nll
    from esa.engine.data.batches import calibration_draw
    from esa.engine.data.corpus import load_split
    from esa.engine.models.loading import load_model

    out, frame, _ = ablated
    model, tok = load_model(str(ref_tiny))
    model.eval()
    docs = load_split(kinds_project.root / "data/stdlib-tiny", "evaluation")
    windows, draw = calibration_draw(tok, docs, context=64, max_windows=3, seed=1, folds=1, fold=0)
    assert draw.record()["window_ids"] == json.loads((out / "sampling.json").read_text())["window_ids"]
    batches = make_batches(sorted(windows, key=lambda w: -w.numel()), 4, tok.pad_token_id or 0)
    with torch.inference_mode():
        base, n = total_nll(model, batches, torch.device("cpu"))
        worst = frame.loc[frame["delta_nll"].abs().idxmax()]
        model.get_parameter(worst["tensor"]).view(-1)[int(worst["flat_index"])] = 0
        ablated_nll, _ = total_nll(model, batches, torch.device("cpu"))
    assert frame["base_nll"].iloc[0] == pytest.approx(base / n, rel=1e-9)
    assert worst["delta_nll"] == pytest.approx(ablated_nll / n - base / n, rel=1e-6, abs=1e-12)
    assert worst["delta_nll"] != 0


def test_transfer_rho_is_spearman_of_scores_against_the_damage(ablated):
    out, frame, _ = ablated
    table = pd.read_parquet(out / "transfer.parquet").set_index(["metric", "source"])
    assert set(table.index) == {("grad_x_weight", "calibration"), ("grad_x_weight", "evaluation"),
                                ("magnitude", "calibration")}  # magnitude has no gradient to redo on the text
    for (metric, source), row in table.iterrows():
        score = frame[f"score_{metric}_{source}"]
        assert row["rho"] == pytest.approx(stats.spearmanr(score, frame["delta_nll"].abs())[0])
        assert row["rho_signed"] == pytest.approx(stats.spearmanr(score, frame["delta_nll"])[0])
        assert row["n"] == len(frame)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rho"]["magnitude"]["calibration"] == pytest.approx(table.loc[("magnitude", "calibration"), "rho"])


def test_compile_reads_the_same_seeds_saved_scores(kinds_project):
    stages = kinds_project.stages
    assert [n for n in stages if n.startswith("ablation.")] == [STAGE]
    stage, scores = stages[STAGE], "results/phase2/sc/seed1"
    assert f"--scores {scores} " in stage["cmd"] and "--seed 1 " in stage["cmd"]
    assert {f"{scores}/scores", f"{scores}/topk.parquet"} <= set(stage["deps"])
    params = kinds_project.params["phase2"]["abl"]
    assert params["metrics"] == ["grad_x_weight", "magnitude"] and params["rank_by"] == "grad_x_weight"
    assert (params["top"], params["n_random"], params["eval_windows"]) == (TOP, N_RANDOM, 3)
    assert {"results/phase2/abl/seed1/transfer.parquet", "results/phase2/abl/seed1/summary.json"} \
        <= set(stages["grade.phase2"]["deps"])


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["ablation_check"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
