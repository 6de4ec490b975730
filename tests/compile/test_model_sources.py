"""Models named by path or hub id at compile time: a checkpoint folder is a dep of every stage that loads it and must
exist; a hub id carries its revision (null when unpinned, with a warning) and the remote-code opt-in into params."""

import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from esa.compile.compiler import compile_specs
from esa.spec import SpecErrors, load_spec
from esa.spec.model_source import is_hub_id, is_local_path, local_location

SCORES = textwrap.dedent("""\
    phase: 2
    title: local checkpoint
    hypotheses: [{id: H1, statement: s}]
    defaults: {model: MODEL, data: stdlib-tiny}
    runs:
      - {id: ev, kind: eval, protocol: smoke, seeds: [1, 2]}
      - {id: sc, kind: score, metrics: [magnitude], topk: 8, seeds: [1, 2]}
    """)
PERTURB = textwrap.dedent("""\
    phase: 3
    title: perturb a local checkpoint
    hypotheses: [{id: H1, statement: s}]
    runs:
      - {id: zero, kind: perturb, perturbation: zero, model: MODEL, data: stdlib-tiny, protocol: smoke,
         seeds: [1, 2], scores: {spec: specs/scores.yaml, run: sc, metric: magnitude, k: 5}}
    """)


@pytest.fixture
def project(tmp_path, repo_root):
    for folder in ("stages", "esa"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs").mkdir()
    return tmp_path


def write_specs(project, model: str, extra: str = "") -> list[str]:
    (project / "specs/scores.yaml").write_text(SCORES.replace("MODEL", model) + extra)
    (project / "specs/perturb.yaml").write_text(PERTURB.replace("MODEL", model))
    return ["specs/scores.yaml", "specs/perturb.yaml"]


def model_stages(result) -> dict:
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    return {name: stage for name, stage in stages.items()
            if name.startswith(("eval.", "score.", "perturb.", "baseline."))}


@pytest.mark.parametrize("written", ["./checkpoints/my-llama", "checkpoints-abs"])
def test_every_stage_loading_a_local_checkpoint_depends_on_its_folder(project, written):
    (project / "checkpoints/my-llama").mkdir(parents=True)
    (project / "checkpoints/my-llama/config.json").write_text("{}")
    model = written if written.startswith(".") else str(project / "checkpoints/my-llama")
    result = compile_specs(write_specs(project, model), project)
    stages = model_stages(result)
    assert {name.split(".")[0] for name in stages} == {"eval", "score", "perturb", "baseline"}
    assert len(stages) == 2 + 2 + 2 + 1
    location = "checkpoints/my-llama" if written.startswith(".") else model
    for name, stage in stages.items():
        assert location in stage["deps"], name
    params = yaml.safe_load(result.params_yaml)
    assert params["phase2"]["ev"]["model"] == location and params["phase2"]["ev"]["model_name"] == model
    # A local folder has no revision: its bytes are what DVC tracks.
    assert "revision" not in params["phase2"]["ev"] and "trust_remote_code" not in params["phase2"]["sc"]
    assert result.warnings == []


def test_a_missing_checkpoint_is_one_line_naming_file_line_and_model_key(project):
    write_specs(project, "./checkpoints/missing")
    with pytest.raises(SpecErrors) as caught:
        compile_specs(["specs/scores.yaml"], project)
    assert [str(e) for e in caught.value.errors] == [
        f"specs/scores.yaml:4:12: defaults.model: local model './checkpoints/missing' does not exist (relative "
        f"paths start at the project root {project.resolve()})"]
    proc = subprocess.run([sys.executable, "-m", "esa.cli", "compile", "specs/perturb.yaml"], cwd=project,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    missing = f"local model './checkpoints/missing' does not exist (relative paths start at the project root " \
              f"{project.resolve()})"
    # The perturb spec brings in the spec of the scores it reads: each names the model once.
    assert proc.stderr.splitlines() == [f"error: specs/scores.yaml:4:12: defaults.model: {missing}",
                                        f"error: specs/perturb.yaml:5:51: runs[0].model: {missing}"]
    assert not (project / "dvc.yaml").exists()


def test_a_hub_id_that_is_also_a_project_folder_is_refused(project):
    (project / "org/model").mkdir(parents=True)
    with pytest.raises(SpecErrors, match=r"scores.yaml:4:12: defaults.model: 'org/model' is a hub id but also a "
                                         r"folder of this project; write './org/model' to load the folder"):
        compile_specs(write_specs(project, "org/model")[:1], project)


def test_unpinned_hub_ids_warn_and_compile_with_a_null_revision(project):
    result = compile_specs(write_specs(project, "EleutherAI/pythia-70m"), project)
    warnings = sorted({str(w) for w in result.warnings})
    assert warnings == [
        "specs/perturb.yaml:5:51: runs[0].model: hub model 'EleutherAI/pythia-70m' is not pinned: set `revision:` to "
        "a commit hash so a change on the hub cannot change the run unnoticed",
        "specs/scores.yaml:4:12: defaults.model: hub model 'EleutherAI/pythia-70m' is not pinned: set `revision:` "
        "to a commit hash so a change on the hub cannot change the run unnoticed"]
    params = yaml.safe_load(result.params_yaml)
    assert params["phase2"]["ev"]["revision"] is None and params["phase2"]["sc"]["revision"] is None
    assert all("EleutherAI/pythia-70m" not in stage["deps"] for stage in model_stages(result).values())
    proc = subprocess.run([sys.executable, "-m", "esa.cli", "compile", "specs/scores.yaml"], cwd=project,
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert [line for line in proc.stderr.splitlines() if "not pinned" in line] == [f"warning: {warnings[1]}"]


def test_revision_and_remote_code_opt_in_are_params_of_every_stage(project):
    commit = "a" * 40
    sources = write_specs(project, "EleutherAI/pythia-70m")
    scores = (project / sources[0]).read_text().replace(
        "defaults: {model: EleutherAI/pythia-70m,",
        f"defaults: {{model: EleutherAI/pythia-70m, revision: {commit}, trust_remote_code: true,")
    (project / sources[0]).write_text(scores)
    perturb = (project / sources[1]).read_text().replace("model: EleutherAI/pythia-70m,",
                                                         "model: EleutherAI/pythia-70m, revision: v1.0,")
    (project / sources[1]).write_text(perturb)
    result = compile_specs(sources, project)
    assert result.warnings == []
    params = yaml.safe_load(result.params_yaml)
    for run in ("ev", "sc"):
        assert params["phase2"][run]["revision"] == commit and params["phase2"][run]["trust_remote_code"] is True
    assert params["phase3"]["zero"]["revision"] == "v1.0" and "trust_remote_code" not in params["phase3"]["zero"]
    # Another revision is another model: its unperturbed baseline is its own stage.
    (baseline,) = [key for key in params["baselines"]]
    assert baseline.startswith("pythia-70m-v1_0-") and params["baselines"][baseline]["revision"] == "v1.0"
    stages = model_stages(result)
    assert all(stage["params"] for stage in stages.values())


def test_revision_needs_a_hub_id(write_spec):
    path = write_spec("phase: 1\ntitle: t\nhypotheses: [{id: H1, statement: s}]\n"
                      "runs:\n  - {id: ev, kind: eval, model: ref-tiny, revision: main}\n")
    with pytest.raises(SpecErrors, match=r"spec.yaml:5:43: runs\[0\].revision: revision pins a hub id \(org/name\); "
                                         r"'ref-tiny' is not one"):
        load_spec(path)


@pytest.mark.parametrize(("name", "local", "hub"), [
    ("./checkpoints/x", True, False), ("../x", True, False), ("/abs/x", True, False), ("~/x", True, False),
    ("EleutherAI/pythia-70m", False, True), ("ref-s", False, False), ("smollm2-135m-instruct", False, False),
    ("a/b/c", False, False)])
def test_model_names_are_told_apart_by_spelling(name, local, hub):
    assert (is_local_path(name), is_hub_id(name)) == (local, hub)


def test_local_locations_are_normalised_and_stay_relative():
    assert local_location("./checkpoints/../checkpoints/x/") == "checkpoints/x"
    assert local_location("/abs/./x") == "/abs/x"
    assert not local_location("~/x").startswith("~")
