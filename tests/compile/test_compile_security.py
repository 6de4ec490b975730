"""The security spec compiles: one faults stage per seed reading the critical set of the paired scoring seed; faults
runs and criteria that cannot work are refused at compile time in one line naming the spec's line and key (exit
code 2)."""

from __future__ import annotations


import pytest
import yaml
from copied_project import compile_error, copied_project
from golden_files import check_golden

from esa.compile.compiler import compile_specs


def test_security_golden(repo_root):
    result = compile_specs(["specs/security.yaml"], repo_root)
    check_golden("security.dvc.yaml", result.dvc_yaml)
    check_golden("security.params.yaml", result.params_yaml)


def test_security_reads_the_phase2_critical_set_of_the_paired_seed(repo_root):
    stages = yaml.safe_load(compile_specs(["specs/security.yaml"], repo_root).dvc_yaml)["stages"]
    stage = stages["faults.security/faults/seed123"]
    assert "--critical results/phase2/gradient/seed123 " in stage["cmd"] and "--part 1 " in stage["cmd"]
    assert "results/phase2/gradient/seed123/topk.parquet" in stage["deps"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["grade.security"]["outs"]]
    assert {"results/security/faults.parquet", "results/security/attacks.parquet"} <= set(outs)


SCORES = """\
phase: 2
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-5xs, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: sc, kind: score, metrics: [grad_x_weight], modes: [per_layer], topk: 8}
  - {id: other, kind: score, model: ref-4xs, metrics: [grad_x_weight], topk: 8}
"""
FAULTS = """\
phase: 5
name: sec
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-5xs, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: ft, kind: faults, critical: {spec: specs/p2.yaml, run: sc, mode: per_layer, k: 4}, formats: [fp32, int8],
     rates: [1.0e-6, 1.0e-4], attack: {formats: [int8]}}
criteria:
  - {id: gain, hypothesis: H1, kind: protection_gain, run: ft, format: int8, rate: 1.0e-4}
  - {id: ftc, hypothesis: H1, kind: flips_to_collapse, run: ft, threshold: 3}
"""


@pytest.fixture
def project(tmp_path, repo_root):
    return copied_project(tmp_path, repo_root, {"specs/p2.yaml": SCORES})



def test_a_good_faults_run_compiles(project):
    (project / "specs/p5.yaml").write_text(FAULTS)
    stages = compile_specs(["specs/p5.yaml"], project).stages
    assert {"faults.sec/ft/seed1", "faults.sec/ft/seed2", "score.phase2/sc/seed1"} <= set(stages)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("run: sc, mode", "run: other, mode",
     "runs[0].critical: score run 'other' scored ref-4xs on stdlib-tiny, this run uses ref-5xs"),
    ("run: sc, mode", "run: nope, mode", "runs[0].critical: specs/p2.yaml has no score run 'nope'"),
    ("mode: per_layer, k: 4}", "mode: global, k: 4}", "runs[0].critical: score run 'sc' does not select in global mode"),
    ("mode: per_layer, k: 4}", "mode: per_layer, k: 40}", "runs[0].critical: k 40 exceeds score run 'sc' topk 8"),
    ("format: int8, rate: 1.0e-4}", "format: bf16, rate: 1.0e-4}",
     "criteria[0].format: run 'ft' does not store weights as bf16"),
    ("format: int8, rate: 1.0e-4}", "format: int8, rate: 1.0e-5}", "criteria[0].rate: run 'ft' has no rate 1e-05 (rates: 1e-06, 0.0001)"),
    ("kind: flips_to_collapse, run: ft,", "kind: flips_to_collapse, run: ft, format: fp32,",
     "criteria[1].format: run 'ft' attacks no fp32 weights (formats: int8)"),
    (", attack: {formats: [int8]}}", "}", "criteria[1].run: run 'ft' has no attack"),
])
def test_faults_runs_that_cannot_work_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    text = FAULTS.replace(old, new)
    assert text != FAULTS
    line = compile_error(project, monkeypatch, text)
    assert line.startswith("error: specs/p5.yaml:") and line.endswith(expected), line


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("rates: [1.0e-6, 1.0e-4]", "rates: [1.0e-6, 1.5]", "a bit-error rate is a number in (0, 1), got 1.5"),
    ("formats: [fp32, int8]", "formats: [fp32, fp8]", "Input should be"),
    ("ft, threshold: 3}", "ft, b: unrestricted, threshold: 3}", "a and b must be different arms"),
])
def test_bad_faults_fields_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    line = compile_error(project, monkeypatch, FAULTS.replace(old, new))
    assert line.startswith("error: specs/p5.yaml:") and expected in line, line
