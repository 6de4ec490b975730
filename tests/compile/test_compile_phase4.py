"""Phase 4 compiles: the scaling and architecture runs add no stage of their own, the grade stage reads every ladder
model's score and perturb outputs, a perturb sweep reads the score run of its own model, and bad ladders are refused
at compile time in one line naming the spec's line and key (exit code 2)."""

from __future__ import annotations

import pytest
import yaml
from copied_project import compile_error, copied_project
from golden_files import check_golden

from esa.compile.compiler import compile_specs


def test_phase4_golden(repo_root):
    result = compile_specs(["specs/phase4.yaml"], repo_root)
    check_golden("phase4.dvc.yaml", result.dvc_yaml)
    check_golden("phase4.params.yaml", result.params_yaml)


def test_grade_stage_reads_each_ladder_models_results_and_perturb_runs_read_their_own_models_scores(repo_root):
    stages = yaml.safe_load(compile_specs(["specs/phase4.yaml"], repo_root).dvc_yaml)["stages"]
    assert not [name for name in stages if "ladder" in name or "architectures" in name]
    deps = stages["grade.phase4"]["deps"]
    for model in ("ref-5xs", "ref-s"):
        assert f"results/phase4/scores-{model}/seed123/scores" in deps
        assert f"results/phase4/signflip-{model}/seed999/summary.json" in deps
        flip = stages[f"perturb.phase4/signflip-{model}/seed123"]
        assert f"--scores results/phase4/scores-{model}/seed123 " in flip["cmd"]
    assert "results/phase4/scores-ref-moe/seed1337/tensor_stats.parquet" in deps
    outs = [next(iter(out)) if isinstance(out, dict) else out for out in stages["grade.phase4"]["outs"]]
    assert {"results/phase4/scaling.parquet", "results/phase4/architecture_layers.parquet"} <= set(outs)
    assert len(deps) == len(set(deps))


HEAD = """\
phase: 4
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {data: stdlib-tiny, seeds: [1, 2]}
sweeps:
  - id: sc
    kind: score
    matrix: {model: [ref-5xs, ref-4xs, ref-3xs, ref-2xs]}
    metrics: [grad_x_weight]
    topk: 8
"""
LADDER = """\
runs:
  - {id: lad, kind: scaling, scores: sc, k: 8}
  - {id: arch, kind: architecture, scores: sc}
criteria:
  - {id: fit, hypothesis: H1, kind: power_law_fit, run: lad, quantity: critical_fraction}
"""


@pytest.fixture
def project(tmp_path, repo_root):
    return copied_project(tmp_path, repo_root)



def test_a_good_ladder_compiles(project):
    (project / "specs/p4.yaml").write_text(HEAD + LADDER)
    result = compile_specs(["specs/p4.yaml"], project)
    assert "grade.p4" not in result.stages and "grade.phase4" in result.stages


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("[ref-5xs, ref-4xs, ref-3xs, ref-2xs]", "[ref-5xs, ref-4xs, ref-3xs]",
     "specs/p4.yaml:12:30: runs[0].scores: a scaling fit needs at least 4 models, got 3 (ref-5xs, ref-4xs, ref-3xs)"),
    ("[ref-5xs, ref-4xs, ref-3xs, ref-2xs]", "[ref-5xs, ref-4xs, ref-3xs, ref-tiny]",
     "specs/p4.yaml:12:30: runs[0].scores: the models have different tokenizers, so per-token quantities do not "
     "belong in one fit: ref-5xs, ref-4xs, ref-3xs: BPE trained on stdlib, vocabulary 4096; ref-tiny: BPE trained "
     "on stdlib-tiny, vocabulary 512"),
    ("scores: sc, k: 8}", "scores: nope, k: 8}",
     "specs/p4.yaml:12:30: runs[0].scores: 'nope' is neither a score run nor a sweep of score runs of this spec"),
])
def test_bad_ladders_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    text = (HEAD + LADDER).replace(old, new)
    assert text != HEAD + LADDER
    line = compile_error(project, monkeypatch, text, "specs/p4.yaml")
    assert line == f"error: {expected}", line


def test_a_criterion_naming_a_model_outside_the_comparison_is_refused(project, monkeypatch):
    text = HEAD + LADDER + "  - {id: moe, hypothesis: H1, kind: component_share, run: arch, model: ref-moe, group: router}\n"
    line = compile_error(project, monkeypatch, text, "specs/p4.yaml")
    assert line.endswith("criteria[1].model: 'ref-moe' is not a model of architecture run 'arch' "
                         "(ref-5xs, ref-4xs, ref-3xs, ref-2xs)"), line
    assert line.startswith("error: specs/p4.yaml:16:65: ")
