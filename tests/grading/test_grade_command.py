"""`esa grade SPEC` prints the grades the grade stage wrote and never writes under results/ (a DVC output)."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from esa.cli import main
from esa.grading.grade import main as grade_stage

REPO = Path(__file__).resolve().parents[2]
GRADES = "results/phase1/grades.json"


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    shutil.copy(REPO / "specs/phase1.yaml", tmp_path / "specs/phase1.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def results_state(root: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted((root / "results").rglob("*")) if p.is_file()}


def grade(*args: str):
    return CliRunner().invoke(main, ["grade", "specs/phase1.yaml", *args])


def test_ungraded_spec_says_how_to_grade(project):
    result = grade()
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"{GRADES}: not graded yet; run `dvc repro grade.phase1` to regrade" in result.output
    assert not (project / "results").exists()


def test_printing_leaves_every_result_file_untouched(project):
    assert grade_stage(["specs/phase1.yaml"]) == 0
    before = results_state(project)
    result = grade()
    assert result.exit_code == 0, result.output
    assert "ppl-seed-cv-smoke" in result.output and f"from {GRADES}, graded " in result.output
    assert results_state(project) == before


def test_edited_spec_is_reported_stale(project):
    assert grade_stage(["specs/phase1.yaml"]) == 0
    spec = project / "specs/phase1.yaml"
    spec.write_text(spec.read_text().replace("    threshold: 0.1\n", "    threshold: 0.2\n", 1))
    result = grade()
    assert result.exit_code == 0, result.output
    assert ("stale: specs/phase1.yaml changed since it was graded; run `dvc repro grade.phase1` to regrade"
            in result.output)


def test_unreadable_grades_are_one_line_naming_the_file_and_line(project):
    (project / "results/phase1").mkdir(parents=True)
    (project / GRADES).write_text('{\n  "criteria": {\n  oops\n}\n')
    result = grade()
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: {GRADES}:3: not valid JSON")
    (project / GRADES).write_text('{"criteria": {"cv": {"value": 1.0}}}')
    result = grade()
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "unexpected content (KeyError" in result.output


LONG_ID = "phase3-zero-super-vs-random-matched-hierarchy-at-the-first-level-of-every-run"


@pytest.mark.parametrize("columns", [60, 100, 240])
def test_table_never_cuts_a_criterion_id(monkeypatch, capsys, columns):
    from esa.grading.grade import print_grades

    monkeypatch.setenv("COLUMNS", str(columns))
    reason = "super -0.000999 < random_k -0.000562 < bottom_k -0.000143; " * 3
    print_grades({"phase": 3, "title": "t", "counts": {"pass": 0, "fail": 1, "inconclusive": 0},
                  "criteria": {LONG_ID: {"hypothesis": "H1", "value": 0.0, "comparator": ">=", "threshold": 1,
                                         "status": "fail", "reason": reason}}})
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= columns and "…" not in "".join(lines)
    # The first cell of the rows, read downwards, spells the whole id.
    cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert "".join(cells) == LONG_ID
    if columns >= 240:
        assert any(LONG_ID in line for line in lines)  # room enough: on one line


def test_a_range_threshold_prints_as_written(monkeypatch, capsys):
    from esa.grading.grade import print_grades

    monkeypatch.setenv("COLUMNS", "160")
    print_grades({"phase": 4, "title": "t", "counts": {"pass": 0, "fail": 1, "inconclusive": 1},
                  "criteria": {"alpha": {"hypothesis": "H2", "value": 0.107, "comparator": "in",
                                         "threshold": "[-0.5, -0.2]", "status": "fail", "reason": "r"},
                               "fit": {"hypothesis": "H1", "value": 0.63, "comparator": ">", "threshold": 0.8,
                                       "status": "inconclusive", "reason": "r"}}})
    out = capsys.readouterr().out
    assert "in [-0.5, -0.2]" in out and "> 0.8" in out
