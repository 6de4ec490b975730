"""`esa submit --slurm` on a real DVC project: --dry-run writes scripts and prints the sbatch lines; bad input is one
line and exit code 2."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from click.testing import CliRunner

from esa.cli import main
from tests.cluster.dag_project import DIAMOND, make_project
from tests.system_tools import needs_git

SPEC = textwrap.dedent("""\
    phase: 1
    title: t
    hypotheses: [{id: H1, statement: s}]
    runs: []
    resources: {cpus: 3, partition: lab}
    """)


def submit(tmp_path, monkeypatch, *args: str):
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(main, ["submit", *args])


@needs_git
def test_dry_run_writes_the_scripts_and_prints_sbatch_lines(tmp_path, monkeypatch):
    make_project(tmp_path)
    result = submit(tmp_path, monkeypatch, "--slurm", "--dry-run", "--gpus", "1", "--time", "20")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / ".esa" / "slurm").iterdir()
    summary = f"5 stages in 3 layers → 3 job arrays and a commit job; scripts in .esa/slurm/{folder.name}/"
    assert summary in result.output
    assert f"layer1=$(sbatch --parsable --dependency=afterok:$layer0 {folder}/layer1.sbatch)" in result.output
    assert f"commit=$(sbatch --parsable --dependency=afterok:$layer2 {folder}/commit.sbatch)" in result.output
    assert "dry run: nothing submitted" in result.output
    layer0 = (folder / "layer0.sbatch").read_text()
    assert "#SBATCH --array=0-1\n" in layer0 and "#SBATCH --gres=gpu:1\n#SBATCH --time=20\n" in layer0
    assert "commit -f a e b c d\n" in (folder / "commit.sbatch").read_text()


@needs_git
def test_the_spec_recorded_in_dvc_yaml_gives_its_stages_resources(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "p.yaml").write_text(SPEC)
    stages = {"grade.phase1": DIAMOND["a"], "corpus.x": DIAMOND["e"]}
    make_project(tmp_path, stages, header="# source: specs/p.yaml sha256:" + "0" * 64 + "\n")
    result = submit(tmp_path, monkeypatch, "--slurm", "--dry-run", "--cpus", "1")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / ".esa" / "slurm").iterdir()
    scripts = {path.name: path.read_text() for path in folder.glob("layer*.sbatch")}
    assert set(scripts) == {"layer0_0.sbatch", "layer0_1.sbatch"}  # two requests: two arrays in one layer
    spec_script = next(text for text in scripts.values() if "grade.phase1" in text)
    assert "#SBATCH --partition=lab\n#SBATCH --cpus-per-task=3\n" in spec_script
    shared = next(text for text in scripts.values() if "corpus.x" in text)
    assert "#SBATCH --cpus-per-task=1\n" in shared and "--partition" not in shared


@needs_git
def test_up_to_date_submits_nothing(tmp_path, monkeypatch):
    make_project(tmp_path, {"a": DIAMOND["a"]})
    from esa.notebook.history import dvc_executable
    from tests.cluster.dag_project import sh

    sh(tmp_path, dvc_executable(), "repro", "-q")
    result = submit(tmp_path, monkeypatch, "--slurm")
    assert result.exit_code == 0 and "up to date: nothing to submit" in result.output
    assert not (tmp_path / ".esa").exists()


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    return line


def test_no_dvc_yaml(tmp_path, monkeypatch):
    assert one_line_error(submit(tmp_path, monkeypatch, "--slurm", "--dry-run")).startswith("error: no dvc.yaml in ")


def test_a_scheduler_must_be_named(tmp_path, monkeypatch):
    assert one_line_error(submit(tmp_path, monkeypatch)) == (
        "error: name the scheduler: `esa submit --slurm` (SLURM is the one supported)")


@needs_git
def test_unknown_target(tmp_path, monkeypatch):
    make_project(tmp_path)
    line = one_line_error(submit(tmp_path, monkeypatch, "--slurm", "--dry-run", "grade.nope"))
    assert line.startswith("error: unknown target 'grade.nope': ")


@needs_git
def test_sbatch_missing_without_dry_run(tmp_path, monkeypatch):
    make_project(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    line = one_line_error(submit(tmp_path, monkeypatch, "--slurm"))
    assert line == ("error: sbatch not on PATH: submit from a SLURM login node, "
                    "or use --dry-run to write the scripts")
    assert not (tmp_path / ".esa").exists()


FAKE_SBATCH = """#!/bin/sh
# Records its arguments and answers like `sbatch --parsable`: job ids 101, 102, …
echo "$*" >> "{log}"
n=$(wc -l < "{log}")
{reject}
echo $((100 + n))
"""


def fake_sbatch(tmp_path, monkeypatch, reject: str = "") -> Path:
    """An sbatch first on PATH that records its calls, one line each, in the file it returns."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.calls"
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(log=log, reject=reject))
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


@needs_git
def test_submit_chains_the_job_ids_sbatch_returns(tmp_path, monkeypatch):
    make_project(tmp_path)
    log = fake_sbatch(tmp_path, monkeypatch)
    result = submit(tmp_path, monkeypatch, "--slurm")
    assert result.exit_code == 0, result.output
    calls = [line.split() for line in log.read_text().splitlines()]
    assert [call[:-1] for call in calls] == [
        ["--parsable"], ["--parsable", "--dependency=afterok:101"], ["--parsable", "--dependency=afterok:102"],
        ["--parsable", "--dependency=afterok:103"]]
    assert [call[-1].rsplit("/", 1)[1] for call in calls] == ["layer0.sbatch", "layer1.sbatch", "layer2.sbatch",
                                                              "commit.sbatch"]
    assert "submitted layer0: job 101 (2 stages)" in result.output
    assert "submitted commit: job 104 (dvc commit)" in result.output
    assert "watch: squeue --jobs=101,102,103,104" in result.output


@needs_git
def test_a_rejected_job_is_one_line_naming_what_was_submitted(tmp_path, monkeypatch):
    make_project(tmp_path)
    fake_sbatch(tmp_path, monkeypatch, reject='[ "$n" = 2 ] && { echo "sbatch: error: Invalid account" >&2; exit 1; }')
    line = one_line_error(submit(tmp_path, monkeypatch, "--slurm", "--account", "nope"))
    assert line == ("error: sbatch rejected layer1.sbatch: sbatch: error: Invalid account "
                    "(already submitted: 101)")
