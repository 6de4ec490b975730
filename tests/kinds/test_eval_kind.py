"""Run kind `eval`: the evaluate stage on ref-tiny, its compile rule, and its graders' outcomes."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes

from esa.registry import PROTOCOLS

EVAL_STAGES = {seed: f"eval.phase1/ev/seed{seed}" for seed in (7, 8)}


def read(out):
    return (json.loads((out / "metrics.json").read_text()), pd.read_parquet(out / "sequences.parquet"),
            json.loads((out / "sampling.json").read_text()))


def test_metrics_are_the_token_weighted_aggregates_of_the_windows(kinds_project):
    metrics, frame, sampling = read(kinds_project.run(EVAL_STAGES[7]))
    nll, tokens = frame["nll_sum"].sum(), frame["n_tokens"].sum()
    assert len(frame) == metrics["n_windows"] == 6 and metrics["n_tokens"] == tokens
    assert metrics["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-9)
    assert metrics["bits_per_byte"] == pytest.approx(nll / math.log(2) / frame["n_bytes"].sum(), rel=1e-9)
    assert metrics["top1_accuracy"] == pytest.approx(frame["n_correct"].sum() / tokens, rel=1e-9)
    assert (frame["n_tokens"] <= PROTOCOLS["smoke"].context).all()
    assert sorted(sampling["window_ids"]) == sorted(frame["window_id"])
    assert sorted(sampling["doc_ids"]) == sorted(set(frame["doc_id"]))


def test_the_seeds_of_a_run_draw_disjoint_documents(kinds_project):
    (_, a, sa), (_, b, sb) = (read(kinds_project.run(stage)) for stage in EVAL_STAGES.values())
    assert (sa["folds"], sa["fold"], sb["folds"], sb["fold"]) == (2, 0, 2, 1)  # seed i of n takes part i of n
    assert not set(a["doc_id"]) & set(b["doc_id"])
    assert not set(a["window_id"]) & set(b["window_id"])


def test_compile_emits_one_stage_per_seed_with_the_protocol_resolved(kinds_project):
    stages, params = kinds_project.stages, kinds_project.params
    evals = sorted(name for name in stages if name.startswith("eval."))
    assert evals == sorted(EVAL_STAGES.values())
    smoke = PROTOCOLS["smoke"]
    assert params["phase1"]["ev"] == {
        "model": "models/ref-tiny", "model_name": "ref-tiny", "data": "data/stdlib-tiny", "protocol": "smoke",
        "context": smoke.context, "stride": smoke.stride, "max_windows": 6, "batch_size": smoke.batch_size,
        "split": "evaluation", "dtype": "float32", "device": "cpu", "seed_plan": [7, 8]}
    for seed, name in EVAL_STAGES.items():
        stage, out = stages[name], f"results/phase1/ev/seed{seed}"
        assert f"--seed {seed} " in stage["cmd"] and stage["cmd"].endswith(f"--out {out}")
        assert {"data/stdlib-tiny", "models/ref-tiny", "stages/evaluate.py"} <= set(stage["deps"])
        assert stage["params"] == ["phase1.ev"]
        grade_deps = set(stages["grade.phase1"]["deps"])
        assert {f"{out}/{f}" for f in ("metrics.json", "sampling.json", "sequences.parquet", "manifest.json")} \
            <= grade_deps


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["eval"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
