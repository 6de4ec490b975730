"""Phase-5 adaptation criteria graded on constructed data: adapt_difference passes, fails and is inconclusive on
tables built for each case, through analyze_adapt_runs and the registered evaluator; forgetting and gain are
checked against hand computation."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

import esa.grading.adapt_criteria  # noqa: F401  (registers the evaluator)
from esa.grading.adapt_analysis import analyze_adapt_runs
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.spec import load_spec

HEAD = """\
phase: 5
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: ad, kind: adapt, scores: {spec: specs/phase2.yaml, run: gradient}, arms: [full, frozen, top, random],
     protocol: smoke}
criteria:
  - {id: forget, hypothesis: H1, kind: adapt_difference, run: ad, measure: forgetting, a: frozen, b: full,
     comparator: "<"}
  - {id: gain, hypothesis: H1, kind: adapt_difference, run: ad, measure: gain, a: top, b: random, comparator: ">"}
"""
N_DOCS, PER_DOC, TOKENS, N_PAIR_DOCS, PAIRS_PER_DOC, PAIR_TOKENS = 30, 4, 100, 20, 3, 40


def _shifted(table: pd.DataFrame, effect: float, sd: float, rng, tokens: int) -> pd.DataFrame:
    codes = pd.factorize(table["doc_id"], sort=True)[0]
    n_docs = codes.max() + 1
    return table.assign(nll_sum=table["nll_sum"] + tokens * (effect + sd * rng.standard_normal(n_docs)[codes]))


def make_project(tmp_path, forgetting: dict, gain: dict, doc_sd: float = 0.01, missing_seed: int | None = None):
    """``forgetting``/``gain``: arm → mean change per token (forgetting raises eval NLL, gain lowers pair NLL)."""
    (tmp_path / "spec.yaml").write_text(HEAD)
    spec = load_spec(tmp_path / "spec.yaml")
    run = spec.run("ad")
    rng = np.random.default_rng(0)
    base = pd.DataFrame([{"window_id": f"d{d}:{w}", "doc_id": f"d{d}", "n_tokens": TOKENS,
                          "nll_sum": TOKENS * (3.0 + level)}
                         for d in range(N_DOCS) for w, level in enumerate(rng.normal(0, 0.2, PER_DOC))])
    (tmp_path / run.baseline_dir()).mkdir(parents=True)
    base.to_parquet(tmp_path / run.baseline_dir() / "sequences.parquet", index=False)
    before = pd.DataFrame([{"window_id": f"p{d}:{j}", "doc_id": f"p{d}", "n_tokens": PAIR_TOKENS,
                            "nll_sum": PAIR_TOKENS * (2.0 + level), "arm": "before"}
                           for d in range(N_PAIR_DOCS) for j, level in enumerate(rng.normal(0, 0.3, PAIRS_PER_DOC))])
    for seed in run.seeds:
        out = tmp_path / f"results/{spec.name}/ad/seed{seed}"
        out.mkdir(parents=True)
        if seed == missing_seed:
            continue
        r = np.random.default_rng(seed)
        cond = pd.concat([_shifted(base, forgetting[a], doc_sd, r, TOKENS).assign(arm=a) for a in run.arms])
        dom = pd.concat([before] + [_shifted(before, -gain[a], doc_sd, r, PAIR_TOKENS).assign(arm=a)
                                    for a in run.arms])
        cond.to_parquet(out / "conditions.parquet", index=False)
        dom.to_parquet(out / "domain.parquet", index=False)
        arms = [{"arm": a, "n_trainable": 1000 if a != "full" else 10**6, "steps": 10, "wall_time_s": 1.0,
                 "final_train_loss": 2.0, "loss_curve": [{"step": 10, "loss": 2.0}]} for a in run.arms]
        (out / "summary.json").write_text(json.dumps({"seed": seed, "arms": arms}))
    return GradeContext(spec, tmp_path, analyze_adapt_runs(spec, tmp_path))


def grade(ctx, criterion_id):
    criterion = next(c for c in ctx.spec.criteria if c.id == criterion_id)
    return EVALUATORS[criterion.kind](criterion, ctx)


EFFECTS = {"full": 0.30, "frozen": 0.05, "top": 0.1, "random": 0.1}
GAINS = {"full": 0.8, "frozen": 0.7, "top": 0.5, "random": 0.1}


def test_protection_that_forgets_less_and_a_selection_that_learns_more_pass(tmp_path):
    ctx = make_project(tmp_path, EFFECTS, GAINS)
    g = grade(ctx, "forget")
    assert g.status == "pass" and g.ci[1] < 0 and g.value == pytest.approx(0.05 - 0.30, abs=0.01)
    g = grade(ctx, "gain")
    assert g.status == "pass" and g.ci[0] > 0 and g.value == pytest.approx(0.5 - 0.1, abs=0.01)
    table = pd.read_parquet(tmp_path / "results" / ctx.spec.name / "adaptation.parquet")
    assert len(table) == 2 * 4
    for row in table.itertuples():  # hand computation from the files
        cond = pd.read_parquet(tmp_path / f"results/{ctx.spec.name}/ad/seed{row.seed}/conditions.parquet")
        base = pd.read_parquet(tmp_path / ctx.spec.run("ad").baseline_dir() / "sequences.parquet")
        mine = cond[cond["arm"] == row.arm]
        expected = mine["nll_sum"].sum() / mine["n_tokens"].sum() - base["nll_sum"].sum() / base["n_tokens"].sum()
        assert row.forgetting == pytest.approx(expected, rel=1e-12)
        assert row.forgetting_ci_low < row.forgetting < row.forgetting_ci_high
        assert row.gain_per_param == pytest.approx(row.gain / row.n_trainable)
        assert row.ppl_after == pytest.approx(math.exp(mine["nll_sum"].sum() / mine["n_tokens"].sum()))


def test_the_reverse_fails(tmp_path):
    ctx = make_project(tmp_path, {**EFFECTS, "frozen": 0.6}, {**GAINS, "top": 0.05})
    assert grade(ctx, "forget").status == "fail"
    assert grade(ctx, "gain").status == "fail"


def test_differences_within_document_noise_are_inconclusive(tmp_path):
    ctx = make_project(tmp_path, {**EFFECTS, "frozen": 0.30}, {**GAINS, "top": 0.1}, doc_sd=0.3)
    for criterion in ("forget", "gain"):
        g = grade(ctx, criterion)
        assert g.status == "inconclusive" and g.ci[0] < 0 < g.ci[1], criterion
        assert "straddles" in g.reason


def test_missing_seed_files_are_inconclusive(tmp_path):
    ctx = make_project(tmp_path, EFFECTS, GAINS, missing_seed=2)
    g = grade(ctx, "forget")
    assert g.status == "inconclusive" and "missing evidence" in g.reason and "seed2" in g.reason


def test_a_criterion_naming_an_arm_the_run_lacks_is_refused(tmp_path):
    from esa.spec.errors import SpecErrors

    (tmp_path / "spec.yaml").write_text(HEAD.replace("a: top, b: random", "a: lora, b: random"))
    with pytest.raises(SpecErrors, match="run 'ad' has no arm 'lora'"):
        load_spec(tmp_path / "spec.yaml")
