"""Phase-5 interpretability criteria graded on constructed stage outputs: superweight_effect (PPL ratio and sink
shift), head_correlation and probe_drop pass, fail and are inconclusive on data built for each case, through
analyze_interpret_runs and the registered evaluators; values are checked against hand computation."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import esa.grading.interpret_criteria  # noqa: F401  (registers the evaluators)
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.grading.interpret_analysis import analyze_interpret_runs
from esa.spec import load_spec

HEAD = """\
phase: 5
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: ip, kind: interpret, critical: {run: gradient, k: 5}, probes: [keyword, builtin], protocol: smoke}
criteria:
  - {id: ppl, hypothesis: H1, kind: superweight_effect, run: ip}
  - {id: sink, hypothesis: H1, kind: superweight_effect, run: ip, measure: sink_shift}
  - {id: heads, hypothesis: H1, kind: head_correlation, run: ip}
  - {id: kw, hypothesis: H1, kind: probe_drop, run: ip, category: keyword}
  - {id: kw-lp, hypothesis: H1, kind: probe_drop, run: ip, category: keyword, measure: logprob}
"""
N_DOCS, PER_DOC, TOKENS, LAYERS = 30, 4, 100, 4
N_HEAD_LAYERS, HEADS, ITEMS, DRAWS = 8, 4, 60, 3


def write_seed(out, seed: int, *, ppl_effect: float, sink_shift: float, head_slope: float, topk_correct: float,
               random_correct: float, superweights: bool, baseline_correct: bool) -> None:
    rng = np.random.default_rng(seed)
    docs = np.repeat(np.arange(N_DOCS), PER_DOC)
    base_nll = 3.0 + rng.normal(0, 0.2, len(docs))
    base_sink = 0.5 + rng.normal(0, 0.05, (len(docs), LAYERS))
    rows = []

    def add(condition, nll, sink):
        for w, d in enumerate(docs):
            for layer in range(LAYERS):
                rows.append({"condition": condition, "window_id": f"d{d}:{w}", "doc_id": f"d{d}", "n_tokens": TOKENS,
                             "nll_sum": TOKENS * nll[w], "layer": layer, "sink": sink[w, layer]})

    add("baseline", base_nll, base_sink)
    sws = []
    if superweights:
        doc_noise = rng.normal(0, 0.01, N_DOCS)[docs]
        add("zeroed:0", base_nll + ppl_effect + doc_noise, base_sink + sink_shift + doc_noise[:, None])
        sws = [{"weight": 0, "layer": 1, "param_name": "model.layers.1.mlp.down_proj.weight", "row": 3, "col": 7,
                "weight_value": 2.0, "output_ratio": 80.0}]
    pd.DataFrame(rows).to_parquet(out / "windows.parquet", index=False)
    pd.DataFrame({"layer": [0], "condition": ["baseline"], "weight": [0]}).to_parquet(out / "activations.parquet")
    layer_effect = rng.normal(0, 1, N_HEAD_LAYERS)
    heads = pd.DataFrame([{"layer": layer, "head": h, "total": int(rng.integers(0, 20)), "q": 0, "k": 0, "v": 0,
                           "o": 0} for layer in range(N_HEAD_LAYERS) for h in range(HEADS)])
    heads["entropy"] = head_slope * heads["total"] + 0.1 * layer_effect[heads["layer"]] + rng.normal(0, 1, len(heads))
    heads["sink_share"] = 0.5
    heads.to_parquet(out / "heads.parquet", index=False)
    probes = []
    for category in ("keyword", "builtin"):
        for item in range(ITEMS):
            probes.append({"condition": "baseline", "draw": 0, "category": category, "item": item,
                           "correct": baseline_correct, "logprob": -0.1})
            probes.append({"condition": "topk", "draw": 0, "category": category, "item": item,
                           "correct": item < topk_correct * ITEMS, "logprob": -1.0})
            for draw in range(DRAWS):
                probes.append({"condition": "random", "draw": draw, "category": category, "item": item,
                               "correct": (item + draw) % ITEMS < random_correct * ITEMS, "logprob": -0.5})
    pd.DataFrame(probes).to_parquet(out / "probes.parquet", index=False)
    (out / "summary.json").write_text(json.dumps({"seed": seed, "superweights": sws}))


def make_project(tmp_path, **effects) -> GradeContext:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "spec.yaml").write_text(HEAD)
    spec = load_spec(tmp_path / "spec.yaml")
    settings = {"ppl_effect": 0.0, "sink_shift": 0.0, "head_slope": 0.0, "topk_correct": 0.5,
                "random_correct": 0.5, "superweights": True, "baseline_correct": True, **effects}
    for seed in spec.run("ip").seeds:
        out = tmp_path / f"results/{spec.name}/ip/seed{seed}"
        out.mkdir(parents=True)
        write_seed(out, seed, **settings)
    return GradeContext(spec, tmp_path, analyze_interpret_runs(spec, tmp_path))


def grade(ctx: GradeContext, criterion_id: str):
    criterion = next(c for c in ctx.spec.criteria if c.id == criterion_id)
    return EVALUATORS[criterion.kind](criterion, ctx)


def test_zeroing_a_super_weight_that_matters_passes_both_measures(tmp_path):
    ctx = make_project(tmp_path, ppl_effect=0.5, sink_shift=-0.2)
    ppl, sink = grade(ctx, "ppl"), grade(ctx, "sink")
    assert ppl.status == "pass" and ppl.value == pytest.approx(math.exp(0.5), rel=0.01)
    assert sink.status == "pass" and sink.value == pytest.approx(-0.2, abs=0.01)
    entry = ctx.analysis["runs"]["ip"]["superweights"][0]
    assert entry["sink_layers"] == [2, 3]  # the layers after the weight's


def test_a_super_weight_effect_on_the_wrong_side_fails(tmp_path):
    ctx = make_project(tmp_path, ppl_effect=-0.3, sink_shift=0.2)
    assert grade(ctx, "ppl").status == "fail" and grade(ctx, "sink").status == "fail"


def test_no_effect_or_no_super_weight_is_inconclusive(tmp_path):
    ctx = make_project(tmp_path / "flat")
    ppl, sink = grade(ctx, "ppl"), grade(ctx, "sink")
    assert ppl.status == "inconclusive" and ppl.ci[0] < 1 < ppl.ci[1]
    assert sink.status == "inconclusive" and sink.ci[0] < 0 < sink.ci[1]
    none = make_project(tmp_path / "none", superweights=False)
    g = grade(none, "ppl")
    assert g.status == "inconclusive" and "found no super weight" in g.reason


def test_head_correlation_passes_fails_and_is_inconclusive(tmp_path):
    positive = make_project(tmp_path / "pos", head_slope=1.0)
    g = grade(positive, "heads")
    assert g.status == "pass"
    heads = pd.read_parquet(tmp_path / "pos/results/phase5/ip/seed1/heads.parquet")
    seed1 = next(e for e in positive.analysis["runs"]["ip"]["head_correlations"]
                 if e["seed"] == 1 and (e["count"], e["stat"]) == ("total", "entropy"))
    assert seed1["rho"] == pytest.approx(stats.spearmanr(heads["total"], heads["entropy"]).statistic)
    assert grade(make_project(tmp_path / "neg", head_slope=-1.0), "heads").status == "fail"
    assert grade(make_project(tmp_path / "none", head_slope=0.0), "heads").status == "inconclusive"


def test_probe_drop_passes_fails_and_is_inconclusive_with_the_hand_computed_drop(tmp_path):
    ctx = make_project(tmp_path / "drop", topk_correct=0.2, random_correct=0.9)
    g = grade(ctx, "kw")
    assert g.status == "pass" and g.value == pytest.approx(0.9 - 0.2, abs=1e-9)
    lp = grade(ctx, "kw-lp")  # every random item at −0.5 nats, every critical one at −1.0: a point interval
    assert lp.status == "pass" and lp.value == pytest.approx(0.5) and lp.ci == pytest.approx([0.5, 0.5])
    assert grade(make_project(tmp_path / "rise", topk_correct=0.9, random_correct=0.2), "kw").status == "fail"
    same = grade(make_project(tmp_path / "same", topk_correct=0.5, random_correct=0.5), "kw")
    assert same.status == "inconclusive" and same.value == pytest.approx(0.0, abs=1e-9)
    # A model that gets nothing right before ablation has nothing to lose: no verdict, whatever the interval.
    unknown = make_project(tmp_path / "unknown", topk_correct=0.0, random_correct=0.0, baseline_correct=False)
    g = grade(unknown, "kw")
    assert g.status == "inconclusive" and "answers no keyword item correctly" in g.reason


def test_missing_outputs_are_inconclusive(tmp_path):
    ctx = make_project(tmp_path)
    (tmp_path / "results/phase5/ip/seed2/probes.parquet").unlink()
    ctx = GradeContext(ctx.spec, tmp_path, analyze_interpret_runs(ctx.spec, tmp_path))
    for criterion_id in ("ppl", "heads", "kw"):
        g = grade(ctx, criterion_id)
        assert g.status == "inconclusive" and "missing evidence" in g.reason
