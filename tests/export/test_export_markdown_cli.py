"""Markdown exhibits and the `esa export` command: output, progress and one-line errors with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from esa.export import markdown
from esa.export.cli import export_command
from esa.export.exhibits import Exhibits, Table
from esa.export.phases import build
from esa.export.exhibits_phase3 import conditions
from esa.export.writer import write_exhibits
from esa.report import tables_phase3 as tables3
from esa.report.phase2_results import Phase2Results
from esa.spec import load_spec

DATA = Path(__file__).resolve().parents[1] / "report" / "data"


@pytest.mark.parametrize("text, expected", [
    ("a|b", r"a\|b"),
    ("grad_x_weight * 2", r"grad\_x\_weight \* 2"),
    ("<b> [x]", r"\<b\> \[x\]"),
    ("back\\slash", r"back\\slash"),
    ("run `a|b_c` ok_", r"run `a\|b_c` ok\_"),  # code spans keep their text, pipes still escaped
    ("two\nlines", "two lines"),
])
def test_escape(text: str, expected: str) -> None:
    assert markdown.escape(text) == expected


def _cells(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_pipe_table_shape_and_alignment() -> None:
    frame = pd.DataFrame({"name": ["a|b", None], "value": [0.000123456, 1234.5], "": ["x", "y"]})
    md = markdown.table("phase9", Table("t", "Caption | with pipe", frame))
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| name | value |   |"
    assert lines[1] == "|:---|---:|:---|"
    assert lines[2] == r"| a\|b | 0.000123 | x |"
    assert lines[3] == "| — | 1,234 | y |"
    assert all(len(_cells(line)) == 3 for line in lines)
    assert r"**Caption \| with pipe**" in md


def test_phase3_markdown_via_cli(tmp_path: Path, make_project, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project("phase3", tmp_path / "project")
    monkeypatch.chdir(root)
    result = CliRunner().invoke(export_command, ["3", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    out = root / "exports" / "phase3"
    assert "exports/phase3" in result.stdout and "README.md" in result.stdout
    readme = (out / "README.md").read_text()
    for name in ("criteria", "conditions", "statistics", "dose-response"):
        assert f"]({name}.md)" in readme
    for figure in ("delta-ppl", "dose-response"):
        assert f"(figures/{figure}.svg)" in readme and f"(figures/{figure}.png)" in readme
        assert (out / "figures" / f"{figure}.png").stat().st_size > 0
    # The conditions table has one row per row of the page's frame.
    spec = load_spec(root / "specs" / "phase3.yaml")
    runs = tables3.perturb_runs(spec)
    _, summary = conditions(runs, Phase2Results(root, phase="phase3"))
    frame = tables3.conditions_frame(summary, runs)
    rows = [line for line in (out / "conditions.md").read_text().splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(frame)
    assert all(len(_cells(line)) == frame.shape[1] for line in rows)
    assert r"ΔPPL (mean ± sd)" in rows[0] and r"Gaussian noise σ = 0.01·\|w\|" in (out / "conditions.md").read_text()


@pytest.mark.parametrize("phase, files, missing", [
    ("phase1", [], "results/phase1/grades.json"),
    ("phase1", ["results/phase1/grades.json"], "results/phase1/summary.json"),
    ("phase2", ["results/phase2/grades.json"], "specs/phase2.yaml"),
    ("phase3", ["specs/phase3.yaml", "specs/phase2.yaml", "results/phase3/grades.json"],
     "results/phase3/analysis.json"),
    ("phase5", ["specs/phase5.yaml", "results/phase5/grades.json"], "results/phase5/pruning.parquet"),
])
def test_missing_results_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str,
                                            files: list[str], missing: str) -> None:
    for rel in files:
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        origin = DATA / Path(rel).name if phase == "phase1" else DATA / phase / rel
        target.write_bytes(origin.read_bytes())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(export_command, [phase])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {missing}: no such file")
    assert "Traceback" not in result.output and not (tmp_path / "exports").exists()


def test_unknown_phase_and_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(export_command, ["phase7"])
    assert result.exit_code == 2 and result.stderr.strip() == "error: unknown phase 'phase7' (known: phase1, " \
                                                              "phase2, phase3, phase4, phase5)"
    assert CliRunner().invoke(export_command, ["phase1", "--format", "docx"]).exit_code == 2


def test_progress_bar_on_request(tmp_path: Path, make_project, capsys: pytest.CaptureFixture) -> None:
    exhibits = build("phase1", make_project("phase1", tmp_path / "p"))
    tables_only = Exhibits(exhibits.phase, exhibits.tables, [])
    write_exhibits(tables_only, tmp_path / "out", "markdown", progress=True)
    assert "export phase1" in capsys.readouterr().err
