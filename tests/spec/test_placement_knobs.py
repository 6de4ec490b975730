"""A score run's device_map / max_memory (accelerate's split of a model over devices): validated where written,
compiled into the stage's params only when set, so the params of every unsplit run stay as they were."""

from __future__ import annotations

import pytest

from test_bad_input import compile_error
from test_memory_knobs import compiled, with_score_fields


@pytest.mark.parametrize("written, line, key, message", [
    ("max_memory: {cpu: 8GiB}\n", 16, "runs[1].max_memory", "max_memory needs a device_map (e.g. device_map: auto)"),
    ("device_map: everywhere\n", 16, "runs[1].device_map", "'everywhere' is not a split: use auto, balanced"),
    ("device_map: {model.layers.0: gpu}\n", 16, "runs[1].device_map", "unknown device for model.layers.0"),
    ("device_map: auto\nmax_memory: {cpu: lots}\n", 17, "runs[1].max_memory", "cpu: 'lots' is not a size"),
    ("device_map: auto\nmax_memory: {gpu: 8GiB}\n", 17, "runs[1].max_memory", "unknown device 'gpu'"),
])
def test_bad_placement_is_one_located_line(write_spec, tmp_path, monkeypatch, written, line, key, message):
    path = write_spec(with_score_fields(written))
    error = compile_error(path, tmp_path, monkeypatch)
    assert error.startswith(f"error: {path}:{line}:") and f": {key}: " in error and message in error, error


def test_placement_reaches_params_only_when_set(write_spec, tmp_path, monkeypatch):
    plain = compiled(write_spec, tmp_path, monkeypatch, with_score_fields(""))
    assert "device_map" not in plain and "max_memory" not in plain
    split = compiled(write_spec, tmp_path, monkeypatch,  # the same spec file, rewritten
                     with_score_fields("device_map: auto\nmax_memory: {0: 70GiB, cpu: 200GiB}\n"))
    assert split["device_map"] == "auto" and split["max_memory"] == {0: "70GiB", "cpu": "200GiB"}
    assert {k: v for k, v in split.items() if k not in ("device_map", "max_memory")} == plain
