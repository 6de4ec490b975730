"""share_load: a spec's perturb runs that load the same model compile into one stage (runs × seeds on one load);
without it every run and seed keeps its own stage, as the phase3 golden file shows."""

from __future__ import annotations

import shutil

import pytest
import yaml
from golden_files import check_golden

from esa.compile.compiler import compile_specs

PHASE3_SHARED = "  controls: [random_k, bottom_k]\n  share_load: true\n"


@pytest.fixture
def project(tmp_path, repo_root):
    """A copy of the project's code and specs, with specs/phase3.yaml's runs set to share one load."""
    for folder in ("stages", "esa", "specs"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "specs/phase3.yaml"
    text = path.read_text()
    assert "\n  controls: [random_k, bottom_k]\n" in text  # the defaults' last line
    path.write_text(text.replace("  controls: [random_k, bottom_k]\n", PHASE3_SHARED, 1))
    return tmp_path


def stages_of(result) -> dict:
    return yaml.safe_load(result.dvc_yaml)["stages"]


def test_phase3_with_share_load_golden(project):
    result = compile_specs(["specs/phase3.yaml"], project)
    check_golden("phase3-shared.dvc.yaml", result.dvc_yaml)


def test_every_run_and_seed_of_one_model_is_one_stage_with_their_union(project, repo_root):
    shared = compile_specs(["specs/phase3.yaml"], project)
    single = compile_specs(["specs/phase3.yaml"], repo_root)
    grouped, separate = stages_of(shared), stages_of(single)
    members = {name: stage for name, stage in separate.items() if name.startswith("perturb.")}
    assert len(members) == 7 * 3
    assert [name for name in grouped if name.startswith("perturb.")] == ["perturb.phase3/shared-ref-s-float32-cpu"]
    stage = grouped["perturb.phase3/shared-ref-s-float32-cpu"]
    assert sorted(stage["outs"]) == sorted(out for member in members.values() for out in member["outs"])
    assert sorted(stage["params"]) == sorted({key for member in members.values() for key in member["params"]})
    code = {dep for dep in stage["deps"] if dep.startswith(("stages/", "esa/"))}
    inputs = {dep for member in members.values() for dep in member["deps"] if not dep.startswith(("stages/", "esa/"))}
    assert set(stage["deps"]) - code == inputs and len(stage["deps"]) == len(set(stage["deps"]))
    assert {"stages/perturb_group.py", "stages/perturb.py"} <= code  # the program and the per-seed work it reuses
    assert stage["cmd"].count("--member ") == 21
    # The same params, the same grade stage: only how the stages are cut differs.
    assert yaml.safe_load(shared.params_yaml) == yaml.safe_load(single.params_yaml)
    assert grouped["grade.phase3"] == separate["grade.phase3"]


def test_runs_that_load_differently_are_not_grouped(project):
    path = project / "specs/phase3.yaml"
    # One run in float16 (with its own baseline): two loads, two stages.
    path.write_text(path.read_text().replace("{id: signflip, kind: perturb,", "{id: signflip, kind: perturb, dtype: float16,"))
    stages = stages_of(compile_specs(["specs/phase3.yaml"], project))
    shared = sorted(name for name in stages if name.startswith("perturb."))
    assert shared == ["perturb.phase3/shared-ref-s-float16-cpu", "perturb.phase3/shared-ref-s-float32-cpu"]
    assert stages[shared[0]]["cmd"].count("--member ") == 3 and stages[shared[1]]["cmd"].count("--member ") == 18


def test_share_load_is_off_unless_written(project):
    path = project / "specs/phase3.yaml"
    path.write_text(path.read_text().replace(PHASE3_SHARED, "  controls: [random_k, bottom_k]\n  share_load: false\n"))
    stages = stages_of(compile_specs(["specs/phase3.yaml"], project))
    assert sum(name.startswith("perturb.phase3/") for name in stages) == 21

