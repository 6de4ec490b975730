"""Pre-registration: locking, amendments with their diff, re-locking with a reason, grading and compiling."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from esa.cli import main
from esa.grading.grade import main as grade_stage
from esa.notebook.lock import AMENDED, NOT_LOCKED, PRE_REGISTERED, LockError, lock_path, lock_status, write_lock

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    shutil.copy(REPO / "specs/phase1.yaml", tmp_path / "specs/phase1.yaml")
    for code in ("esa", "stages"):  # the compiler checks that stage code exists
        (tmp_path / code).symlink_to(REPO / code)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_unlocked_then_locked_and_layout_changes_do_not_count(project):
    spec = project / "specs/phase1.yaml"
    assert lock_status(spec).state == NOT_LOCKED
    path, message = write_lock(spec, results_dir=project / "results/phase1")
    assert path == project / "specs/phase1.lock" and "pre-registered" in message
    status = lock_status(spec)
    assert status.state == PRE_REGISTERED and status.diff == "" and not status.results_existed_at_lock
    # Comments, quoting and a description outside hypotheses/criteria are not amendments.
    edit(spec, 'comparator: "<"', "comparator: '<'  # unchanged value")
    edit(spec, "Establish honest", "Establish an honest")
    assert lock_status(spec).state == PRE_REGISTERED


def test_moved_threshold_is_amended_with_its_diff(project):
    spec = project / "specs/phase1.yaml"
    write_lock(spec, results_dir=project / "results/phase1")
    edit(spec, "    threshold: 0.1\n", "    threshold: 0.2\n")
    status = lock_status(spec)
    assert status.state == AMENDED
    assert status.changes == {"criteria": {"ppl-sanity": "changed"}}
    removed = [l for l in status.diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    added = [l for l in status.diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert removed == ["-  threshold: 0.1"] and added == ["+  threshold: 0.2"]


def test_added_and_removed_criteria_are_named(project):
    spec = project / "specs/phase1.yaml"
    write_lock(spec, results_dir=project / "results/phase1")
    edit(spec, "  - id: ppl-finite\n", "  - id: ppl-finite-renamed\n")
    status = lock_status(spec)
    assert status.changes == {"criteria": {"ppl-finite": "removed", "ppl-finite-renamed": "added"}}


def test_cli_refuses_silent_relock_and_keeps_history_with_reason(project):
    runner = CliRunner()
    assert runner.invoke(main, ["lock", "specs/phase1.yaml"]).exit_code == 0
    edit(project / "specs/phase1.yaml", "    threshold: 0.1\n", "    threshold: 0.2\n")
    refused = runner.invoke(main, ["lock", "specs/phase1.yaml"])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "ppl-sanity changed" in refused.output and "--amend" in refused.output
    amended = runner.invoke(main, ["lock", "specs/phase1.yaml", "--amend", "vocabulary grew"])
    assert amended.exit_code == 0, amended.output
    status = lock_status(project / "specs/phase1.yaml")
    assert status.state == PRE_REGISTERED
    assert [a["reason"] for a in status.amendments] == ["vocabulary grew"]
    history = yaml.safe_load(lock_path(project / "specs/phase1.yaml").read_text())["history"]
    assert history[0]["registered"]["criteria"][-1]["threshold"] == 0.1


def test_hand_edited_lock_is_rejected(project):
    spec = project / "specs/phase1.yaml"
    path, _ = write_lock(spec, results_dir=project / "results/phase1")
    edit(path, "threshold: 0.1", "threshold: 0.3")
    with pytest.raises(LockError, match="sha256: does not match"):
        lock_status(spec)


def test_lock_written_after_results_says_so(project):
    (project / "results/phase1").mkdir(parents=True)
    (project / "results/phase1/grades.json").write_text("{}")
    write_lock(project / "specs/phase1.yaml", results_dir=project / "results/phase1")
    assert lock_status(project / "specs/phase1.yaml").results_existed_at_lock


def test_grades_record_lock_state_and_compile_depends_on_lock(project):
    runner = CliRunner()
    assert runner.invoke(main, ["compile", "specs/phase1.yaml"]).exit_code == 0
    assert "specs/phase1.lock" not in (project / "dvc.yaml").read_text()
    assert grade_stage(["specs/phase1.yaml"]) == 0
    assert json.loads((project / "results/phase1/grades.json").read_text())["lock"]["state"] == NOT_LOCKED

    locked = runner.invoke(main, ["lock", "specs/phase1.yaml"])
    assert locked.exit_code == 0 and "recompiled dvc.yaml" in locked.output
    stage = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["grade.phase1"]
    assert "specs/phase1.lock" in stage["deps"]
    edit(project / "specs/phase1.yaml", "    threshold: 0.1\n", "    threshold: 0.2\n")
    assert grade_stage(["specs/phase1.yaml"]) == 0
    graded = runner.invoke(main, ["grade", "specs/phase1.yaml"])
    lock = json.loads((project / "results/phase1/grades.json").read_text())["lock"]
    assert lock["state"] == AMENDED and "+  threshold: 0.2" in lock["diff"]
    assert "pre-registration: amended after lock" in graded.output
