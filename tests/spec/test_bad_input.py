"""Bad spec input ends in one line, `error: file:line:col: key: message`, and exit code 2 — never a traceback."""

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from esa.cli import main
from esa.spec import load_spec

SPEC = textwrap.dedent("""\
    phase: 2
    title: t
    hypotheses:
      - id: H1
        statement: s
    defaults:
      model: ref-tiny
      data: stdlib-tiny
      seeds: [1, 2]
    runs:
      - id: base
        kind: eval
      - id: gradient
        kind: score
        metrics: [grad_x_weight]
    criteria:
      - id: cv
        hypothesis: H1
        kind: seed_cv
        runs: [base]
      - id: stable
        hypothesis: H1
        kind: jaccard_stability
        run: gradient
        metric: grad_x_weight
        threshold: 0.4
    """)


def compile_error(path, tmp_path, monkeypatch) -> str:
    """Run `esa compile PATH` and return its only stderr line, after checking exit code 2 and no traceback."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compile", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


def test_the_fixture_spec_is_valid(write_spec):
    # Each test below breaks one thing; the error must come from that change alone.
    assert [run.id for run in load_spec(write_spec(SPEC)).runs] == ["base", "gradient"]


def test_non_utf8_byte_is_located_by_line_column_and_key(write_spec, tmp_path, monkeypatch):
    path = write_spec(SPEC)
    path.write_bytes(SPEC.encode().replace(b"title: t", b"title: caf\xe9 t"))
    assert compile_error(path, tmp_path, monkeypatch) == (
        f"error: {path}:2:11: title: not UTF-8 text (byte 0xe9); save the spec as UTF-8")


def test_non_utf8_in_a_file_yaml_cannot_parse_still_gives_the_line(write_spec, tmp_path, monkeypatch):
    path = write_spec("")
    path.write_bytes(b"phase: 2\n\n  - [\xff\n")
    assert compile_error(path, tmp_path, monkeypatch) == (
        f"error: {path}:3:6: <root>: not UTF-8 text (byte 0xff); save the spec as UTF-8")


def test_non_utf8_spec_in_a_fresh_process_prints_no_traceback(write_spec, tmp_path):
    # The decode error used to escape as a traceback with exit code 1; check the real entry point.
    path = write_spec(SPEC)
    path.write_bytes(SPEC.encode().replace(b"statement: s", b"statement: \x80s"))
    proc = subprocess.run([sys.executable, "-m", "esa.cli", "compile", str(path)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {path}:5:16: hypotheses[0].statement: not UTF-8 text (byte 0x80); save the spec as UTF-8"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("run: gradient", "run: gradeint",
         "24:5: criteria[1].run: unknown run 'gradeint' (known: base, gradient)"),
        ("runs: [base]", "runs: [nope]",
         "20:12: criteria[0].runs[0]: unknown run or sweep 'nope' (runs: base, gradient)"),
        ("kind: jaccard_stability\n    run: gradient\n    metric: grad_x_weight\n",
         "kind: ratio\n    run: signflip\n",
         "24:5: criteria[1].run: unknown run 'signflip' (known: base, gradient)"),
    ],
)
def test_unknown_run_in_a_criterion_lists_the_known_runs(write_spec, tmp_path, monkeypatch, old, new, expected):
    assert old in SPEC
    path = write_spec(SPEC.replace(old, new))
    assert compile_error(path, tmp_path, monkeypatch) == f"error: {path}:{expected}"


def test_run_of_the_wrong_kind_lists_the_runs_of_the_right_kind(write_spec, tmp_path, monkeypatch):
    path = write_spec(SPEC.replace("kind: jaccard_stability\n    run: gradient\n    metric: grad_x_weight\n",
                                   "kind: ratio\n    run: gradient\n"))
    assert compile_error(path, tmp_path, monkeypatch) == (
        f"error: {path}:24:5: criteria[1].run: 'gradient' is not a perturb run of this spec (perturb runs: none)")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_threshold_points_at_the_threshold_key(write_spec, tmp_path, monkeypatch, value):
    path = write_spec(SPEC.replace("threshold: 0.4", f"threshold: {value}"))
    shown = {".nan": "nan", ".inf": "inf", "-.inf": "-inf"}[value]
    assert compile_error(path, tmp_path, monkeypatch) == (
        f"error: {path}:26:5: criteria[1].threshold: threshold must be a finite number, got {shown}")
