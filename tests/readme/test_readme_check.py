"""`esa readme`: generated tables match their results, and every number of a cited region is in a cited file."""

import json

from click.testing import CliRunner

from esa.cli import main
from esa.readme.blocks import BlockError, find_blocks
from esa.readme.check import check_file

GRADES = {"criteria": {
    "ratio-signflip": {"kind": "ratio", "description": "sign flip of the top-100", "value": 33.41, "ci": [26.1, 44.1],
                       "comparator": ">=", "threshold": 5, "status": "pass",
                       "reason": "ΔPPL super 15.1 vs random_k 0.452"},
    "dose": {"kind": "monotonic", "description": "noise dose", "value": -0.9, "ci": [-1, 0.6], "comparator": ">=",
             "threshold": 0.9, "status": "fail", "exploratory": True}}}

README = """# Results

<!-- esa:table criteria results/phase3/grades.json -->
<!-- esa:end -->

<!-- esa:cites results/phase3/grades.json -->
Flipping the super set does 33.4× the harm of random weights (15.1 vs 0.45).
<!-- esa:end -->

Outside a region 99.9 is not checked.
"""


def project(tmp_path, readme=README, grades=GRADES):
    (tmp_path / "results" / "phase3").mkdir(parents=True)
    (tmp_path / "results" / "phase3" / "grades.json").write_text(json.dumps(grades))
    path = tmp_path / "README.md"
    path.write_text(readme)
    return path


def test_the_criteria_table_is_written_from_the_grades(tmp_path):
    outcome = check_file(project(tmp_path))
    assert outcome.stale == ["README.md:3: table criteria results/phase3/grades.json differs from the results"]
    table = outcome.text.split("<!-- esa:table criteria results/phase3/grades.json -->\n")[1].split("<!--")[0]
    lines = table.strip().split("\n")
    assert lines[0] == "| criterion | kind | what | value \\[95% CI\\] | test | status |"
    assert lines[2] == "| `ratio-signflip` | ratio | sign flip of the top-100 | 33.4 \\[26.1, 44.1\\] | ≥ 5 | pass |"
    assert lines[3] == "| `dose` (exploratory) | monotonic | noise dose | -0.9 \\[-1, 0.6\\] | ≥ 0.9 | fail |"
    assert outcome.unsupported == []


def test_a_written_readme_checks_clean_and_a_changed_result_makes_it_stale(tmp_path):
    path = project(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["readme", str(path)], catch_exceptions=False)
    assert result.exit_code == 0 and "rewrote 1 table" in result.output
    assert runner.invoke(main, ["readme", "--check", str(path)]).exit_code == 0
    grades = json.loads(json.dumps(GRADES))
    grades["criteria"]["ratio-signflip"]["value"] = 31.9
    (tmp_path / "results" / "phase3" / "grades.json").write_text(json.dumps(grades))
    before = path.read_text()
    result = runner.invoke(main, ["readme", "--check", str(path)])
    assert result.exit_code == 1 and "README.md:3: table criteria" in result.output
    assert path.read_text() == before  # --check changes nothing


def test_a_quoted_number_that_disagrees_with_the_results_is_reported_with_its_line(tmp_path):
    path = project(tmp_path, README.replace("(15.1 vs 0.45)", "(15.1 vs 0.47)"))
    outcome = check_file(path)
    assert outcome.unsupported == ["README.md:7: 0.47 is not in results/phase3/grades.json"]
    result = CliRunner().invoke(main, ["readme", str(path)])
    assert result.exit_code == 1 and "README.md:7: 0.47 is not in" in result.output


def test_bad_markers_and_missing_sources_are_one_line_errors(tmp_path):
    path = project(tmp_path, README.replace("<!-- esa:end -->\n\nOutside", "\nOutside"))
    result = CliRunner().invoke(main, ["readme", str(path)])
    assert result.exit_code == 2 and "README.md:6: esa:cites is never closed" in result.output
    assert "Traceback" not in result.output
    path = project(tmp_path / "b", README.replace("phase3/grades.json -->\n<!-- esa:end", "phase9/grades.json -->\n<!-- esa:end"))
    result = CliRunner().invoke(main, ["readme", str(path)])
    assert result.exit_code == 2 and "README.md:3: results/phase9/grades.json: no such file" in result.output


def test_markers_cannot_nest_or_close_twice():
    for text, message in [("<!-- esa:cites a -->\n<!-- esa:cites b -->\n", "opens inside"),
                          ("x\n<!-- esa:end -->\n", "without an opening marker")]:
        try:
            find_blocks(text)
        except BlockError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(f"{text!r} was accepted")
