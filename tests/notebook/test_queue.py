"""`esa queue`: a sweep of params queued as DVC experiments, run by DVC's queue workers, read back through the
notebook's experiments table (`dvc exp show --json`)."""

import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from dvc_project import make_baseline, sh
from system_tools import needs_git

from esa.cli import main
from esa.notebook.compare import compare, criterion_cells
from esa.notebook.history import dvc_executable, read_history
from esa.notebook.queue import parse_queue_status, queued_names, wait_for

WAIT_S = 300  # two tiny stages; a worker that never picks them up fails the test instead of hanging it


@pytest.fixture
def dvc_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(make_baseline(tmp_path))
    return tmp_path


@pytest.fixture
def files_only(tmp_path, monkeypatch):
    """params.yaml and dvc.yaml without git: checks and dry runs read only these."""
    (tmp_path / "params.yaml").write_text("p:\n  x: 1\n  model: {name: a}\nq:\n  x: 3\n")
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent("""\
        stages:
          grade.s: {cmd: python grade.py s p, params: [p.x]}
        """))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def experiment_values(names):
    """{experiment name: (its p.x, spec s's criterion cv)} as the notebook reads them."""
    records, note = read_history(Path.cwd(), commits=1)
    assert note is None
    found = {r.name: r for r in records if r.kind == "experiment" and r.name in names}
    return {name: (r.params["p"]["x"], criterion_cells(r.grades["s"])["cv"].value) for name, r in found.items()}


@needs_git
def test_queued_sweep_runs_on_the_queue_and_reaches_the_experiments_table(dvc_repo):
    queued = CliRunner().invoke(main, ["queue", "grade.s", "-S", "p.x=4,8", "--name-prefix", "wide"])
    assert queued.exit_code == 0, queued.output
    assert "queued: wide-1, wide-2" in queued.output and "dvc queue start -j 1" in queued.output
    dvc = dvc_executable()
    status = parse_queue_status(subprocess.run([dvc, "queue", "status"], capture_output=True, text=True,
                                               check=True).stdout)
    assert status == {"wide-1": "Queued", "wide-2": "Queued"}

    sh(dvc_repo, dvc, "queue", "start", "-j", "2")
    assert wait_for(["wide-1", "wide-2"], dvc, dvc_repo, timeout=WAIT_S) == {"wide-1": "Success", "wide-2": "Success"}

    assert experiment_values(["wide-1", "wide-2"]) == {"wide-1": (4, 0.4), "wide-2": (8, 0.8)}
    table = CliRunner().invoke(main, ["compare", "wide-1", "wide-2", "--spec", "s"])
    assert table.exit_code == 0, table.output
    cv = next(line for line in table.output.splitlines() if "| cv " in line)
    assert cv.index("0.4 pass") < cv.index("0.8 fail")
    assert "wide-1 (from " in table.output and "p.x=4" in table.output and "p.x=8" in table.output


@needs_git
def test_start_waits_for_the_sweep_and_prints_it_beside_its_commit(dvc_repo, monkeypatch):
    # No dvc on PATH, as when .venv/bin/esa runs without the venv activated: DVC spawns its queue workers as
    # plain `dvc`, so esa must put dvc's directory on their PATH or the queue never starts.
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                                if not (Path(d) / "dvc").exists()))
    result = CliRunner().invoke(main, ["queue", "grade.s", "-S", "p.x=2,6", "-j", "2", "--start",
                                       "--timeout", str(WAIT_S)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = next(line for line in lines if line.startswith("queued: ")).removeprefix("queued: ").split(", ")
    assert len(names) == 2  # DVC's own names: no --name-prefix
    assert experiment_values(names) == dict(zip(names, [(2, 0.2), (6, 0.6)]))
    header = next(line for line in lines if line.startswith("| spec "))
    branch = subprocess.run(["git", "branch", "--show-current"], capture_output=True, text=True).stdout.strip()
    assert [c.strip() for c in header.split("|")[1:-1]] == ["spec", "criterion", branch, *names]
    cv = next(line for line in lines if "| cv " in line)
    assert cv.index("0.1 pass") < cv.index("0.2 pass") < cv.index("0.6 fail")
    assert "| ok " not in result.output  # grade.s was the target: spec t's criteria are left out


@needs_git
def test_a_failed_experiment_is_named_with_where_its_log_is(dvc_repo):
    result = CliRunner().invoke(main, ["queue", "grade.s", "-S", "p.x=oops", "--name-prefix", "broken", "--start",
                                       "--timeout", str(WAIT_S)])
    assert result.exit_code == 1, result.output
    assert "not successful: broken (Failed)" in result.output and "dvc queue logs broken" in result.output
    assert compare(read_history(dvc_repo, commits=1)[0], names=["master"]).columns == ["master"]


def test_dry_run_lists_dvc_s_own_expansion_and_queues_nothing(files_only):
    result = CliRunner().invoke(main, ["queue", "grade.s", "-S", "p.x=2,3", "-S", "q.x=range(4,6)",
                                       "--name-prefix", "g", "--dry-run", "--start", "-j", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "4 experiments:",
        "  1. p.x=2 q.x=4  (g-1)",
        "  2. p.x=2 q.x=5  (g-2)",
        "  3. p.x=3 q.x=4  (g-3)",
        "  4. p.x=3 q.x=5  (g-4)",
        "would run: dvc exp run --queue -S p.x=2,3 -S 'q.x=range(4,6)' -n g grade.s",
        "would run: dvc queue start -j 2, then wait for `dvc queue status`",
    ]
    assert not (files_only / ".dvc").exists()


@pytest.mark.parametrize("args, message", [
    (["-S", "p.y=2,3"], "error: params.yaml: no param 'p.y' (-S p.y=2,3); did you mean 'p.x'?"),
    (["-S", "p.model.nme=b"],
     "error: params.yaml: no param 'p.model.nme' (-S p.model.nme=b); did you mean 'p.model.name'?"),
    (["-S", "p.x"], "error: -S p.x: expected key=value (or key=a,b for a sweep)"),
    (["-S", "+p.y=1"], "error: -S +p.y=1: esa queue only changes params params.yaml already has"),
    (["-S", "other.yaml:p.x=1"], "error: other.yaml: no such params file (-S other.yaml:p.x=1)"),
    (["grade.z", "-S", "p.x=2"], "error: dvc.yaml: no stage 'grade.z'; did you mean 'grade.s'?"),
    ([], "error: nothing to sweep: give at least one -S key=value"),
])
def test_bad_keys_and_stages_end_in_one_line_and_exit_2(files_only, args, message):
    result = CliRunner().invoke(main, ["queue", *args, "--dry-run"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(message), result.output
    assert "Traceback" not in result.output


def test_a_params_file_that_is_not_yaml_is_one_line_too(files_only):
    (files_only / "params.yaml").write_text("p: [1\n")
    result = CliRunner().invoke(main, ["queue", "-S", "p.x=2", "--dry-run"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("error: params.yaml: not valid YAML (")


def test_queue_status_table_and_queued_names_are_parsed():
    status = textwrap.dedent("""\
        Task     Name        Created       Status
        27d7db1  sw-1        06:21 AM      Success
        66f3944  sw-2        Dec 02, 2026  Running

        Worker status: 1 active, 0 idle
        """)
    assert parse_queue_status(status) == {"sw-1": "Success", "sw-2": "Running"}
    assert queued_names("Queueing with overrides '{'params.yaml': ['p.x=2']}'.\n"
                        "Queued experiment 'sw-1' for future execution.\n") == ["sw-1"]
