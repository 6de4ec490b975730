"""A spec's `name` (default phase<N>): validated like a run id, and unique among the specs compiled together."""

import shutil
import textwrap

import pytest
from click.testing import CliRunner

from esa.cli import main
from esa.notebook.history import RunRecord
from esa.spec import SpecErrors, load_spec

SPEC = textwrap.dedent("""\
    phase: 1
    title: t
    hypotheses: [{id: H1, statement: s}]
    runs:
      - {id: base, kind: eval, model: ref-tiny, data: stdlib-tiny, protocol: smoke, seeds: [7]}
    criteria:
      - {id: fin, hypothesis: H1, kind: finite}
    """)
NAMED = SPEC.replace("phase: 1\n", "phase: 1\nname: real-phase1\n")


def errors_of(path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_spec(path)
    return [str(e) for e in info.value.errors]


def test_name_defaults_to_the_phase(write_spec):
    assert load_spec(write_spec(SPEC)).name == "phase1"
    assert load_spec(write_spec(NAMED)).name == "real-phase1"
    assert load_spec(write_spec(SPEC.replace("phase: 1\n", "phase: 1\nname: phase1\n"))).name == "phase1"


@pytest.mark.parametrize(("name", "message"), [
    ("real phase", "name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_-]*$'"),
    ("phase2", "name: name 'phase2' is the default name of phase-2 specs; this is a phase-1 spec"),
    ("baselines", "name: name 'baselines' is reserved: results/baselines/ holds the shared unperturbed "
                  "evaluations of perturb runs"),
])
def test_bad_names_point_at_the_name_key(write_spec, name, message):
    path = write_spec(SPEC.replace("phase: 1\n", f"phase: 1\nname: {name}\n"))
    assert errors_of(path) == [f"{path}:2:1: {message}"]


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    """A project with the code stages depend on; the tests write their specs into specs/."""
    for folder in ("stages", "esa"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def compile_cli(*specs: str):
    return CliRunner().invoke(main, ["compile", *specs])


def test_two_specs_of_one_phase_compile_apart(project):
    (project / "specs/a.yaml").write_text(SPEC)
    (project / "specs/b.yaml").write_text(NAMED)
    result = compile_cli("specs/a.yaml", "specs/b.yaml")
    assert result.exit_code == 0, result.output
    dvc = (project / "dvc.yaml").read_text()
    for stage in ("eval.phase1/base/seed7:", "eval.real-phase1/base/seed7:", "grade.phase1:", "grade.real-phase1:"):
        assert f"  {stage}\n" in dvc
    assert "results/real-phase1/grades.json" in dvc
    assert "real-phase1:\n  base:\n" in (project / "params.yaml").read_text()


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


def test_same_written_name_is_a_located_error(project):
    (project / "specs/a.yaml").write_text(NAMED)
    (project / "specs/b.yaml").write_text("# the same name again\n" + NAMED)
    line = one_error_line(compile_cli("specs/a.yaml", "specs/b.yaml"))
    assert line == ("error: specs/b.yaml:3:1: name: spec name 'real-phase1' is already used by specs/a.yaml; "
                    "give one of them another `name:`")


def test_same_default_name_points_at_the_phase_line(project):
    (project / "specs/a.yaml").write_text(SPEC)
    (project / "specs/b.yaml").write_text(SPEC)
    line = one_error_line(compile_cli("specs/b.yaml", "specs/a.yaml"))
    assert line == ("error: specs/b.yaml:1:1: name: spec name 'phase1' (the default for phase 1) is already used "
                    "by specs/a.yaml; give one of them another `name:`")


def graded(name: str) -> dict:
    return {"phase": 1, "spec": f"specs/{name}.yaml", "graded_at": "2026-01-01T00:00:00Z",
            "counts": {"pass": 1}, "criteria": {}}


@pytest.mark.parametrize(("given", "shown"), [("1", "phase1"), ("phase1", "phase1"), ("real-phase1", "real-phase1")])
def test_log_phase_takes_a_phase_or_a_spec_name(monkeypatch, tmp_path, given, shown):
    record = RunRecord("workspace", "workspace", grades={"phase1": graded("phase1"), "real-phase1": graded("real")})
    monkeypatch.setattr("esa.notebook.history.read_history", lambda root, commits: ([record], None))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["log", "--phase", given])
    assert result.exit_code == 0, result.output
    headings = [line for line in result.stdout.splitlines() if line.startswith("## ")]
    assert len(headings) == 1 and f"— {shown} (workspace)" in headings[0]
