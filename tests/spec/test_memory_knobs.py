"""A score run's microbatch and accum_dtype: validated where written (a run or `defaults`), compiled into the
stage's params with the default spelled out."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from esa.cli import main
from esa.spec import load_spec
from test_bad_input import SPEC, compile_error

REPO = Path(__file__).resolve().parents[2]
SCORE_LINE = "    metrics: [grad_x_weight]\n"


def with_score_fields(text: str) -> str:
    return SPEC.replace(SCORE_LINE, SCORE_LINE + textwrap.indent(text, " " * 4))


@pytest.mark.parametrize("written, key, message", [
    ("microbatch: 0\n", "microbatch", "Input should be greater than or equal to 1"),
    ("microbatch: two\n", "microbatch", "Input should be a valid integer, unable to parse string as an integer"),
    ("accum_dtype: float16\n", "accum_dtype", "Input should be 'float32', 'bfloat16' or 'auto'"),
])
def test_bad_value_is_one_located_line(write_spec, tmp_path, monkeypatch, written, key, message):
    path = write_spec(with_score_fields(written))
    assert compile_error(path, tmp_path, monkeypatch) == f"error: {path}:16:5: runs[1].{key}: {message}"


def test_defaults_reach_score_runs_and_leave_eval_runs_alone(write_spec, tmp_path, monkeypatch):
    text = SPEC.replace("  seeds: [1, 2]\n", "  seeds: [1, 2]\n  microbatch: 4\n  accum_dtype: bfloat16\n")
    spec = load_spec(write_spec(text))
    base, gradient = spec.runs
    assert not hasattr(base, "microbatch")
    assert (gradient.microbatch, gradient.accum_dtype) == (4, "bfloat16")
    bad = write_spec(text.replace("microbatch: 4", "microbatch: -1"), "bad.yaml")
    assert compile_error(bad, tmp_path, monkeypatch) == (
        f"error: {bad}:10:3: defaults.microbatch: Input should be greater than or equal to 1")


def test_a_default_no_run_kind_has_is_still_an_error(write_spec, tmp_path, monkeypatch):
    path = write_spec(SPEC.replace("  seeds: [1, 2]\n", "  seeds: [1, 2]\n  microbach: 4\n"))
    assert compile_error(path, tmp_path, monkeypatch) == f"error: {path}:10:3: defaults.microbach: unknown key"


def compiled(write_spec, tmp_path, monkeypatch, text: str) -> dict:
    for folder in ("stages", "esa"):  # the code files the stages depend on
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compile", str(write_spec(text))])
    assert result.exit_code == 0, result.output
    return yaml.safe_load((tmp_path / "params.yaml").read_text())["phase2"]["gradient"]


@pytest.mark.parametrize("written, microbatch, accum", [
    ("", 1, "float32"),  # the default spec: one sequence per pass, float32 accumulators, as before
    ("microbatch: 8\naccum_dtype: bfloat16\n", 8, "bfloat16"),
    ("device: cuda\ndtype: bfloat16\n", 1, "bfloat16"),  # the default on a bf16 GPU model
    ("device: cuda\ndtype: float32\n", 1, "float32"),
    ("device: auto\ndtype: bfloat16\n", 1, "auto"),  # the stage decides once it knows the device
    ("device: cuda\ndtype: bfloat16\naccum_dtype: float32\n", 1, "float32"),
])
def test_knobs_become_stage_params(write_spec, tmp_path, monkeypatch, written, microbatch, accum):
    params = compiled(write_spec, tmp_path, monkeypatch, with_score_fields(written))
    assert (params["microbatch"], params["accum_dtype"]) == (microbatch, accum)


def test_the_default_rule_at_stage_time():
    from esa.accumulators import resolve_accum_dtype

    assert resolve_accum_dtype("auto", "cuda", "bfloat16") == "bfloat16"
    assert resolve_accum_dtype("auto", "cpu", "bfloat16") == "float32"
    assert resolve_accum_dtype("auto", "cuda", "float16") == "float32"
    assert resolve_accum_dtype("bfloat16", "cpu", "float32") == "bfloat16"
    with pytest.raises(ValueError, match="accum_dtype must be one of"):
        resolve_accum_dtype("int8", "cpu", "float32")
