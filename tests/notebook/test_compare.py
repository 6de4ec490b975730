"""`esa compare`: criteria as rows and revisions/experiments as columns, from real `dvc exp show --json` output."""

import pytest
from click.testing import CliRunner
from dvc_project import make_project
from system_tools import needs_git

from esa.cli import main
from esa.notebook.compare import CompareError, compare, comparison_markdown
from esa.notebook.history import RunRecord


@pytest.fixture
def dvc_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    return tmp_path


@needs_git
def test_compare_reads_dvc_exp_show_json(dvc_repo):
    result = CliRunner().invoke(main, ["compare"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header, cv = lines[0], next(line for line in lines if "| cv " in line)
    assert header.split("|")[1:3] == [" spec ", " criterion "] and "bigger" in header
    assert "0.1 pass" in cv and "0.7 fail" in cv
    assert cv.index("0.1 pass") < cv.index("0.7 fail") == header.index("bigger")
    assert "workspace: same grades as bigger" in result.output  # `dvc exp run` left its results in the workspace
    assert "bigger (from " in result.output and "p.x=7" in result.output

    assert "| t    | ok  " in result.output  # a spec the experiment left alone is still compared

    changed = CliRunner().invoke(main, ["compare", "--only-changed"])
    assert "| cv " in changed.output and "| fin " not in changed.output and "| ok " not in changed.output


@needs_git
def test_compare_names_columns_and_rejects_unknown_ones(dvc_repo):
    result = CliRunner().invoke(main, ["compare", "bigger", "workspace", "--spec", "s"])
    assert result.exit_code == 0, result.output
    assert [c.strip() for c in result.output.splitlines()[0].split("|")[3:5]] == ["bigger", "workspace"]
    unknown = CliRunner().invoke(main, ["compare", "nosuch"])
    assert unknown.exit_code == 2 and unknown.output.count("\n") == 1
    assert "no graded revision or experiment named 'nosuch'" in unknown.output


def graded(value, status):
    return {"criteria": {"cv": {"value": value, "status": status, "reason": "r"}}}


def test_grades_written_before_criteria_values_are_read_from_criteria():
    old = RunRecord("a1b2c3d4", "commit", name="main", grades={"phase1": graded(0.07, "fail")})
    new = RunRecord("e5f6a7b8", "experiment", name="owl", baseline="a1b2c3d4", grades={"phase1": {
        "criteria_values": {"cv": {"value": 0.04, "status_code": 1}, "new": {"value": None, "status_code": 0}}}})
    comparison = compare([old, new])
    assert comparison.columns == ["main", "owl"]
    assert [(cid, [c and c.text for c in row]) for _, cid, row in comparison.rows] == [
        ("cv", ["0.07 fail", "0.04 pass"]), ("new", [None, "— inconclusive"])]
    assert "| phase1 | new       |           | — inconclusive |" in comparison_markdown(comparison)
    with pytest.raises(CompareError, match="no graded spec named 'phase2'"):
        compare([old, new], spec="phase2")
