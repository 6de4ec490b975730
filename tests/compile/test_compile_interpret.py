"""The interpret spec compiles: one stage per seed reading the critical set of the paired scoring seed, each seed on
its own part of the evaluation split; interpret runs and criteria that cannot work are refused at compile time in
one line naming the spec's line and key (exit code 2)."""

from __future__ import annotations


import pytest
import yaml
from copied_project import compile_error, copied_project
from golden_files import check_golden

from esa.compile.compiler import compile_specs
from esa.spec import load_spec


def test_interpret_golden(repo_root):
    result = compile_specs(["specs/interpret.yaml"], repo_root)
    check_golden("interpret.dvc.yaml", result.dvc_yaml)
    check_golden("interpret.params.yaml", result.params_yaml)


def test_interpret_reads_the_phase2_critical_set_of_the_paired_seed(repo_root):
    compiled = compile_specs(["specs/interpret.yaml"], repo_root)
    stages = yaml.safe_load(compiled.dvc_yaml)["stages"]
    stage = stages["interpret.interpret/inside/seed999"]
    assert "--critical results/phase2/gradient/seed999 " in stage["cmd"]
    assert "results/phase2/gradient/seed999/topk.parquet" in stage["deps"]
    params = yaml.safe_load(compiled.params_yaml)["interpret"]["inside"]
    assert params["seed_plan"] == [1337, 123, 999]  # seed i evaluates on part i of three
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["grade.interpret"]["outs"]]
    assert {"results/interpret/superweights.parquet", "results/interpret/head_critical.parquet",
            "results/interpret/probe_accuracy.parquet"} <= set(outs)


SCORES = """\
phase: 2
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-5xs, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: sc, kind: score, metrics: [grad_x_weight], modes: [per_layer], topk: 8}
"""
INTERPRET = """\
phase: 5
name: ins
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-5xs, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: ip, kind: interpret, critical: {spec: specs/p2.yaml, run: sc, mode: per_layer}, probes: [keyword]}
criteria:
  - {id: kw, hypothesis: H1, kind: probe_drop, run: ip, category: keyword}
  - {id: sw, hypothesis: H1, kind: superweight_effect, run: ip}
"""


@pytest.fixture
def project(tmp_path, repo_root):
    return copied_project(tmp_path, repo_root, {"specs/p2.yaml": SCORES})



def test_a_good_interpret_run_compiles_with_the_measure_defaults(project):
    (project / "specs/p5.yaml").write_text(INTERPRET)
    compiled = compile_specs(["specs/p5.yaml"], project)
    assert {"interpret.ins/ip/seed1", "interpret.ins/ip/seed2"} <= set(compiled.stages)
    criteria = {c.id: c for c in load_spec(project / "specs/p5.yaml").criteria}
    assert (criteria["sw"].comparator, criteria["sw"].threshold) == (">", 1.0)  # the ppl_ratio defaults


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("category: keyword}", "category: stdlib}", "criteria[0].category: run 'ip' does not probe stdlib (probes: keyword)"),
    ("run: sc, mode", "run: nope, mode", "runs[0].critical: specs/p2.yaml has no score run 'nope'"),
    ("mode: per_layer}", "mode: global}", "runs[0].critical: score run 'sc' does not select in global mode"),
])
def test_interpret_runs_that_cannot_work_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    text = INTERPRET.replace(old, new)
    assert text != INTERPRET
    line = compile_error(project, monkeypatch, text)
    assert line.startswith("error: specs/p5.yaml:") and line.endswith(expected), line


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("probes: [keyword]}", "probes: [keyword, poems]}", "Input should be"),
    ("probes: [keyword]}", "probes: [keyword], dtype: bfloat16}", "interpret runs read attention probabilities"),
    ("run: ip}", "run: ip, measure: sink}", "Input should be"),
])
def test_bad_interpret_fields_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    line = compile_error(project, monkeypatch, INTERPRET.replace(old, new))
    assert line.startswith("error: specs/p5.yaml:") and expected in line, line
