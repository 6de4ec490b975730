"""The page fixtures are reproducible: each phase's make_fixture.py regenerates the committed graded outputs
(analysis, tables, grades.json) from the committed inputs with today's grading code, and the committed statuses
are what the registered graders give.

A failure here means the grading code changed what it writes: rerun the fixture's make_fixture.py (it prints each
criterion's status) and commit the regenerated files if the change is intended.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).resolve().parent / "data"
VOLATILE = {"graded_at"}  # when the grades were written


def load_maker(phase: str):
    spec = importlib.util.spec_from_file_location(f"make_fixture_{phase}", DATA / phase / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["phase2", "phase3"])
def regenerated(request, tmp_path_factory):
    phase = request.param
    maker = load_maker(phase)
    out = tmp_path_factory.mktemp(phase)
    grades = maker.regenerate(into=out)
    return phase, maker, out, grades


def same_json(a, b, path="") -> list[str]:
    """Differences between two JSON values (floats to 1e-12 relative, NaN equal to NaN), ignoring VOLATILE keys."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - VOLATILE
        return [d for k in sorted(keys) for d in (same_json(a.get(k), b.get(k), f"{path}.{k}") if k in a and k in b
                                                   else [f"{path}.{k}: only in one"])]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same_json(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        if math.isnan(a) and math.isnan(b) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15):
            return []
    elif a == b:
        return []
    return [f"{path}: {a!r} != {b!r}"]


def test_same_json_sees_differences():
    assert same_json({"a": [1.0, {"b": "x"}], "graded_at": 1}, {"a": [1.0, {"b": "x"}], "graded_at": 2}) == []
    assert same_json({"a": [1.0]}, {"a": [1.0 + 1e-9]}) == [".a[0]: 1.0 != 1.000000001"]
    assert same_json({"a": {"s": "pass"}}, {"a": {"s": "fail"}}) == [".a.s: 'pass' != 'fail'"]
    assert same_json({"a": 1}, {"b": 1}) == [".a: only in one", ".b: only in one"]


def test_regenerated_outputs_equal_the_committed_files(regenerated):
    phase, maker, out, _ = regenerated
    committed = DATA / phase / "results" / phase
    for name in maker.GRADED:
        if name.endswith(".json"):
            diffs = same_json(json.loads((out / name).read_text()), json.loads((committed / name).read_text()))
            assert not diffs, f"{phase}/{name} differs from a regeneration: {diffs[:5]}"
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(committed / name),
                                          check_exact=False, rtol=1e-12)


def test_committed_statuses_are_what_the_graders_give(regenerated):
    phase, _, _, grades = regenerated
    committed = json.loads((DATA / phase / "results" / phase / "grades.json").read_text())
    given = {cid: c["status"] for cid, c in grades["criteria"].items()}
    assert {cid: c["status"] for cid, c in committed["criteria"].items()} == given
    assert committed["counts"] == {s: list(given.values()).count(s) for s in ("pass", "fail", "inconclusive")}
    assert len(set(given.values())) > 1  # a fixture of one status would show the page only half of its cases
