"""Phase 5 compiles: the prune run's stages read the saved scores of the paired scoring seed and the shared
baseline; prune runs that cannot work are refused at compile time in one line naming the spec's line and key
(exit code 2)."""

from __future__ import annotations


import pytest
import yaml
from copied_project import compile_error, copied_project
from golden_files import check_golden

from esa.compile.compiler import compile_specs


def test_phase5_golden(repo_root):
    result = compile_specs(["specs/phase5.yaml"], repo_root)
    check_golden("phase5.dvc.yaml", result.dvc_yaml)
    check_golden("phase5.params.yaml", result.params_yaml)


def test_phase5_prunes_with_phase2_scores_on_the_phase3_baseline(repo_root):
    stages = yaml.safe_load(compile_specs(["specs/phase5.yaml"], repo_root).dvc_yaml)["stages"]
    stage = stages["prune.phase5/prune/seed123"]
    assert "--scores results/phase2/gradient/seed123 " in stage["cmd"]
    assert "results/phase2/gradient/seed123/scores" in stage["deps"]
    # The same unpruned evaluation as Phase 3's perturbations.
    assert "results/baselines/ref-s-stdlib/standard-float32/fold0of2-seed1337/sequences.parquet" in stage["deps"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["grade.phase5"]["outs"]]
    assert "results/phase5/pruning.parquet" in outs


SCORES = """\
phase: 2
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-5xs, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: sc, kind: score, metrics: [grad_x_weight, act_mag], topk: 8}
  - {id: nosave, kind: score, metrics: [grad_x_weight, act_mag], topk: 8, save_scores: false}
  - {id: other, kind: score, model: ref-4xs, metrics: [grad_x_weight, act_mag], topk: 8}
"""
PRUNE = """\
phase: 5
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-5xs, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: pr, kind: prune, scores: {spec: specs/p2.yaml, run: sc}, methods: [magnitude, wanda, grad_x_weight],
     sparsities: [0.5], protect: {run: sc, metric: grad_x_weight, mode: per_layer, k: 4}}
"""


@pytest.fixture
def project(tmp_path, repo_root):
    return copied_project(tmp_path, repo_root, {"specs/p2.yaml": SCORES})



def test_a_good_prune_run_compiles(project):
    (project / "specs/p5.yaml").write_text(PRUNE)
    stages = compile_specs(["specs/p5.yaml"], project).stages
    assert {"prune.phase5/pr/seed1", "prune.phase5/pr/seed2", "score.phase2/sc/seed1"} <= set(stages)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("run: sc}, methods", "run: nosave}, methods",
     "runs[0].scores: score run 'nosave' has save_scores: false; this run reads its saved scores"),
    ("run: sc}, methods", "run: other}, methods",
     "runs[0].scores: score run 'other' scored ref-4xs on stdlib-tiny, this run uses ref-5xs"),
    ("methods: [magnitude, wanda, grad_x_weight]", "methods: [magnitude, obd]",
     "runs[0].scores: score run 'sc' does not compute obd, which obd ranks by"),
    ("mode: per_layer, k: 4}", "mode: per_layer, k: 40}",
     "runs[0].protect: k 40 exceeds score run 'sc' topk 8"),
    ("protect: {run: sc,", "protect: {run: nope,", "runs[0].protect: specs/p2.yaml has no score run 'nope'"),
])
def test_prune_runs_that_cannot_work_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    text = PRUNE.replace(old, new)
    assert text != PRUNE
    line = compile_error(project, monkeypatch, text)
    assert line.startswith("error: specs/p5.yaml:") and line.endswith(expected), line


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("sparsities: [0.5]", "sparsities: [0.5, 1.0]", "sparsity must be a number in [0, 1), got 1.0"),
    ("sparsities: [0.5]", "sparsities: [0.0]", "sparsity 0 is the dense baseline"),
    ("methods: [magnitude, wanda, grad_x_weight]", "methods: [magnitude, sparsegpt]", "Input should be"),
    ("k: 4}", "k: 4, methods: [random]}", "protect.methods ['random'] are not among the run's methods"),
])
def test_bad_prune_fields_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    line = compile_error(project, monkeypatch, PRUNE.replace(old, new))
    assert line.startswith("error: specs/p5.yaml:") and expected in line, line
