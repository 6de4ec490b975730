"""share_load belongs to perturb runs: written on a run of another kind it is one located line, exit 2; as a
default it reaches perturb runs only."""

from __future__ import annotations

from esa.spec import load_spec
from test_bad_input import SPEC, compile_error


def test_share_load_on_another_kind_of_run_is_one_located_line(write_spec, tmp_path, monkeypatch):
    path = write_spec(SPEC.replace("    kind: eval\n", "    kind: eval\n    share_load: true\n"))
    assert compile_error(path, tmp_path, monkeypatch) == (
        f"error: {path}:13:5: runs[0].share_load: share_load is a field of perturb runs, not of eval runs")


def test_a_key_no_kind_has_is_still_unknown(write_spec, tmp_path, monkeypatch):
    path = write_spec(SPEC.replace("    kind: eval\n", "    kind: eval\n    share_loads: true\n"))
    assert compile_error(path, tmp_path, monkeypatch) == f"error: {path}:13:5: runs[0].share_loads: unknown key"


def test_a_default_reaches_perturb_runs_and_leaves_the_others_alone(write_spec):
    perturb = ("  - {id: flip, kind: perturb, perturbation: sign_flip, protocol: smoke,\n"
               "     scores: {spec: specs/spec.yaml, run: gradient, k: 5}}\n")
    text = SPEC.replace("  seeds: [1, 2]\n", "  seeds: [1, 2]\n  share_load: true\n")
    spec = load_spec(write_spec(text.replace("criteria:\n", perturb + "criteria:\n")))
    base, gradient, flip = spec.runs
    assert flip.share_load and not hasattr(base, "share_load") and not hasattr(gradient, "share_load")
