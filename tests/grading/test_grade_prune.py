"""Phase-5 pruning criteria graded on constructed per-window data: prune_advantage passes, fails and is
inconclusive on data built for each case, through analyze_prune_runs and the registered evaluator; the PPLs and
ratios are checked against hand computation."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import pytest

import esa.grading.prune_criteria  # noqa: F401  (registers the evaluator)
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.grading.prune_analysis import analyze_prune_runs
from esa.spec import load_spec

HEAD = """\
phase: 5
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: pr, kind: prune, scores: {spec: specs/phase2.yaml, run: gradient}, methods: [magnitude, wanda, random],
     sparsities: [0.5], protocol: smoke, protect: {run: gradient, metric: grad_x_weight, k: 5}}
"""
N_DOCS, PER_DOC, TOKENS = 30, 4, 100


def make_project(tmp_path, criteria: str, effects: dict, doc_sd: float = 0.01, drop: tuple = ()) -> GradeContext:
    """``effects``: arm → mean ΔNLL per token over the baseline; each document shifts by N(0, doc_sd) per arm."""
    (tmp_path / "spec.yaml").write_text(HEAD + "criteria:\n" + textwrap.indent(textwrap.dedent(criteria), "  "))
    spec = load_spec(tmp_path / "spec.yaml")
    run = spec.run("pr")
    rng = np.random.default_rng(0)
    base = pd.DataFrame([{"window_id": f"d{d}:{w}", "doc_id": f"d{d}", "n_tokens": TOKENS,
                          "nll_sum": TOKENS * (3.0 + level)}
                         for d in range(N_DOCS) for w, level in enumerate(rng.normal(0, 0.2, PER_DOC))])
    (tmp_path / run.baseline_dir()).mkdir(parents=True)
    base.to_parquet(tmp_path / run.baseline_dir() / "sequences.parquet", index=False)
    codes = np.repeat(np.arange(N_DOCS), PER_DOC)
    for seed in run.seeds:
        frames = []
        for i, (arm, effect) in enumerate(effects.items()):
            if (seed, arm) in drop:
                continue
            r = np.random.default_rng((seed, i))
            shift = effect + doc_sd * r.standard_normal(N_DOCS)[codes]
            method = arm.removesuffix("+protected")
            frames.append(base.assign(nll_sum=base["nll_sum"] + TOKENS * shift, arm=arm, method=method,
                                      protected=arm != method, group="row", sparsity=0.5, diverged=False))
        out = tmp_path / f"results/{spec.name}/pr/seed{seed}"
        out.mkdir(parents=True)
        pd.concat(frames).to_parquet(out / "conditions.parquet", index=False)
    return GradeContext(spec, tmp_path, analyze_prune_runs(spec, tmp_path))


def grade(ctx: GradeContext, criterion_id: str):
    criterion = next(c for c in ctx.spec.criteria if c.id == criterion_id)
    return EVALUATORS[criterion.kind](criterion, ctx)


CRITERIA = """\
- {id: adv, hypothesis: H1, kind: prune_advantage, run: pr, a: wanda, b: magnitude, sparsity: 0.5}
- {id: keep, hypothesis: H1, kind: prune_advantage, run: pr, a: magnitude+protected, b: magnitude, sparsity: 0.5}
- {id: dense, hypothesis: H1, kind: prune_advantage, run: pr, a: wanda, b: dense, sparsity: 0.5, threshold: 1.1}
"""


def test_a_clearly_lower_ppl_passes_with_the_hand_computed_ratio(tmp_path):
    ctx = make_project(tmp_path, CRITERIA, {"magnitude": 0.5, "wanda": 0.2, "random": 2.0,
                                            "magnitude+protected": 0.45})
    g = grade(ctx, "adv")
    assert g.status == "pass" and g.ci[1] <= 1
    # The ratio of token-weighted PPLs on the same windows: exp(ΔNLL_a − ΔNLL_b) up to the document shifts.
    assert g.value == pytest.approx(math.exp(0.2 - 0.5), rel=0.01)
    entries = ctx.analysis["runs"]["pr"]["prune_ratios"]["adv"]
    assert [e["seed"] for e in entries] == [1, 2]
    for entry in entries:
        table = pd.read_parquet(tmp_path / f"results/{ctx.spec.name}/pr/seed{entry['seed']}/conditions.parquet")
        ppl = {arm: math.exp(t["nll_sum"].sum() / t["n_tokens"].sum()) for arm, t in table.groupby("arm")}
        assert entry["ratio"] == pytest.approx(ppl["wanda"] / ppl["magnitude"], rel=1e-12)
        assert entry["ci_low"] < entry["ratio"] < entry["ci_high"]
    assert grade(ctx, "keep").status == "pass"


def test_a_higher_ppl_fails(tmp_path):
    ctx = make_project(tmp_path, CRITERIA, {"magnitude": 0.2, "wanda": 0.5, "random": 2.0,
                                            "magnitude+protected": 0.3})
    for criterion in ("adv", "keep"):
        g = grade(ctx, criterion)
        assert g.status == "fail" and g.ci[0] > 1, criterion
    # Wanda's PPL is exp(0.5) ≈ 1.65× the dense model's: the 1.1 bound fails.
    g = grade(ctx, "dense")
    assert g.status == "fail" and g.value == pytest.approx(math.exp(0.5), rel=0.01)


def test_a_difference_within_document_noise_is_inconclusive(tmp_path):
    ctx = make_project(tmp_path, CRITERIA, {"magnitude": 0.3, "wanda": 0.3, "random": 2.0,
                                            "magnitude+protected": 0.3}, doc_sd=0.2)
    g = grade(ctx, "adv")
    assert g.status == "inconclusive" and g.ci[0] < 1 < g.ci[1]
    assert "straddles" in g.reason and "30 documents" in g.reason


def test_a_missing_arm_or_seed_is_inconclusive_and_says_why(tmp_path):
    ctx = make_project(tmp_path, CRITERIA, {"magnitude": 0.5, "wanda": 0.2, "random": 2.0,
                                            "magnitude+protected": 0.45}, drop=((2, "wanda"),))
    g = grade(ctx, "adv")
    assert g.status == "inconclusive" and "1 of 2 seeds" in g.reason and "no condition wanda" in g.reason
    (tmp_path / f"results/{ctx.spec.name}/pr/seed1/conditions.parquet").unlink()
    ctx = GradeContext(ctx.spec, tmp_path, analyze_prune_runs(ctx.spec, tmp_path))
    g = grade(ctx, "adv")
    assert g.status == "inconclusive" and "missing evidence" in g.reason


def test_a_diverged_arm_has_no_ratio(tmp_path):
    ctx = make_project(tmp_path, CRITERIA, {"magnitude": 0.5, "wanda": math.inf, "random": 2.0,
                                            "magnitude+protected": 0.45})
    g = grade(ctx, "adv")
    assert g.status == "inconclusive" and "diverged" in g.reason


def test_the_curve_table_has_one_row_per_seed_and_arm_with_its_ci(tmp_path):
    ctx = make_project(tmp_path, CRITERIA, {"magnitude": 0.5, "wanda": 0.2, "random": 2.0,
                                            "magnitude+protected": 0.45})
    table = pd.read_parquet(tmp_path / "results" / ctx.spec.name / "pruning.parquet")
    assert len(table) == 2 * 4 and set(table["arm"]) == {"magnitude", "wanda", "random", "magnitude+protected"}
    assert (table["ci_low"] < table["ppl"]).all() and (table["ppl"] < table["ci_high"]).all()
    random_row = table[table["arm"] == "random"].iloc[0]
    assert random_row["ppl_factor"] == pytest.approx(math.exp(2.0), rel=0.02)


def test_criteria_naming_arms_or_sparsities_the_run_lacks_are_refused(tmp_path):
    from esa.spec.errors import SpecErrors

    bad = """\
    - {id: x, hypothesis: H1, kind: prune_advantage, run: pr, a: obd, b: magnitude, sparsity: 0.5}
    - {id: y, hypothesis: H1, kind: prune_advantage, run: pr, a: wanda, b: magnitude, sparsity: 0.3}
    - {id: z, hypothesis: H1, kind: prune_advantage, run: pr, a: wanda+protected, b: magnitude, sparsity: 0.5}
    """
    (tmp_path / "spec.yaml").write_text(HEAD + "criteria:\n" + textwrap.indent(textwrap.dedent(bad), "  "))
    with pytest.raises(SpecErrors) as info:
        load_spec(tmp_path / "spec.yaml")
    text = str(info.value)
    assert "no arm 'obd'" in text and "does not prune to 0.3" in text and "no arm 'wanda+protected'" in text
