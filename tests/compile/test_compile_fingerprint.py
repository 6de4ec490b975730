"""The fingerprint spec compiles: one stage per seed, each fine-tuning its own siblings from the same base model;
fingerprint runs that cannot work are refused at compile time in one line naming the spec's line and key (exit
code 2)."""

from __future__ import annotations


import pytest
import yaml
from copied_project import compile_error, copied_project
from golden_files import check_golden

from esa.compile.compiler import compile_specs


def test_fingerprint_golden(repo_root):
    result = compile_specs(["specs/fingerprint.yaml"], repo_root)
    check_golden("fingerprint.dvc.yaml", result.dvc_yaml)
    check_golden("fingerprint.params.yaml", result.params_yaml)


def test_fingerprint_stages_and_params(repo_root):
    compiled = compile_specs(["specs/fingerprint.yaml"], repo_root)
    stages = yaml.safe_load(compiled.dvc_yaml)["stages"]
    stage = stages["fingerprint.fingerprint/siblings/seed1337"]
    assert stage["cmd"].startswith("python stages/fingerprint.py --key fingerprint.siblings --seed 1337 ")
    assert "stages/fingerprint.py" in stage["deps"]
    params = yaml.safe_load(compiled.params_yaml)["fingerprint"]["siblings"]
    assert params["siblings"] == 10 and params["backdoor"]["trigger"] == "# cf-7" and params["context"] == 128
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["grade.fingerprint"]["outs"]]
    assert "results/fingerprint/fingerprint.parquet" in outs


SPEC = """\
phase: 5
name: fp
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-5xs, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: sib, kind: fingerprint, siblings: 6}
  - {id: ev, kind: eval}
criteria:
  - {id: auc, hypothesis: H1, kind: fingerprint_auc, run: sib}
"""


@pytest.fixture
def project(tmp_path, repo_root):
    return copied_project(tmp_path, repo_root)



def test_a_good_fingerprint_run_compiles_with_the_defaults(project):
    (project / "specs/p5.yaml").write_text(SPEC)
    compiled = compile_specs(["specs/p5.yaml"], project)
    assert {"fingerprint.fp/sib/seed1", "fingerprint.fp/sib/seed2"} <= set(compiled.stages)
    params = yaml.safe_load(compiled.params_yaml)["fp"]["sib"]
    assert params["metric"] == "grad_x_weight" and params["backdoor"]["rate"] == 0.1 and params["seed_plan"] == [1, 2]


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("siblings: 6}", "siblings: 5}", "siblings must be even"),
    ("siblings: 6}", "siblings: 2}", "greater than or equal to 4"),
    ("siblings: 6}", "siblings: 6, backdoor: {rate: 0}}", "greater than 0"),
    ("siblings: 6}", "siblings: 6, metric: superweight}", "Input should be"),
    ("run: sib}", "run: sib, score: loss}", "Input should be"),
    ("run: sib}", "run: ev}", "'ev' is not a fingerprint run of this spec"),
])
def test_fingerprint_runs_that_cannot_work_are_refused_in_one_line(project, monkeypatch, old, new, expected):
    text = SPEC.replace(old, new)
    assert text != SPEC
    line = compile_error(project, monkeypatch, text)
    assert line.startswith("error: specs/p5.yaml:") and expected in line, line
