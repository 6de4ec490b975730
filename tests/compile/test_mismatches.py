"""Criteria that do not fit their runs: an error when the grade could never be computed, a warning when a setting is
ignored or the verdict can never be decided — each one line naming file, line, column and key."""

import shutil
import textwrap

import pytest
from click.testing import CliRunner

from esa.cli import main
from esa.compile.compiler import load_specs
from esa.spec import SpecErrors

SCORES = "scores: {spec: specs/spec.yaml, run: gradient, k: 50}"
SPEC = textwrap.dedent(f"""\
    phase: 3
    title: t
    hypotheses: [{{id: H1, statement: s}}]
    defaults: {{model: ref-tiny, data: stdlib-tiny, seeds: [1, 2, 3]}}
    runs:
      - {{id: base, kind: eval}}
      - {{id: gradient, kind: score, metrics: [grad_x_weight, grad_squared], topk: 100, k_grid: [25, 50, 100]}}
      - {{id: flip, kind: perturb, perturbation: sign_flip, {SCORES}}}
      - {{id: dose, kind: perturb, perturbation: gauss_noise, levels: [0.01, 0.02], {SCORES}}}
      - {{id: flip-repeat, kind: perturb, perturbation: sign_flip, eval_fold: 1, {SCORES}}}
    criteria:
      - {{id: cv, hypothesis: H1, kind: seed_cv}}
      - {{id: stable, hypothesis: H1, kind: jaccard_stability, run: gradient, metric: grad_x_weight, k: 50}}
      - {{id: ratio, hypothesis: H1, kind: ratio, run: flip, control: random_k}}
      - {{id: effect, hypothesis: H1, kind: min_effect, run: dose, level: 0.02, target: super}}
      - {{id: mono, hypothesis: H1, kind: monotonic, run: dose}}
      - {{id: repeat, hypothesis: H1, kind: repeatability, run: flip, repeat: flip-repeat}}
      - {{id: hot, hypothesis: H1, kind: hotspot, run: gradient, metric: grad_x_weight}}
    """)


def load(write_spec, text: str):
    path = write_spec(text)
    return path, load_specs(["specs/spec.yaml"], path.parents[1])["specs/spec.yaml"]


def test_the_fixture_spec_fits_its_runs(write_spec):
    _, spec = load(write_spec, SPEC)
    assert spec.warnings == []


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("grad_x_weight, k: 50}", "grad_x_weight, k: 60}",
     "13:97: criteria[1].k: k 60 is not in run 'gradient' k_grid: stability is computed only at k = 25, 50, 100 "
     "(k_grid and topk)"),
    ("level: 0.02,", "level: 0.03,", "15:63: criteria[3].level: level 0.03 is not one of run 'dose' levels (0.01, 0.02)"),
    ("control: random_k", "control: random_matched",
     "14:57: criteria[2].control: run 'flip' does not perturb random_matched (its controls: random_k, bottom_k)"),
    ("target: super", "target: random_matched",
     "15:76: criteria[3].target: run 'dose' does not perturb random_matched (it perturbs super, random_k, bottom_k)"),
    ("monotonic, run: dose", "monotonic, run: flip",
     "16:49: criteria[4].run: run 'flip' has a single level (1): a dose-response needs `levels:` with at least two"),
    ("sign_flip, eval_fold: 1,", "sign_flip,",
     "17:66: criteria[5].repeat: 'flip-repeat' evaluates the same documents as 'flip' (fold 0 of 2): give it "
     "another eval_fold (identical windows are kind: determinism)"),
    ("{id: base, kind: eval}", "{id: base, kind: eval, seeds: [4]}",
     "12:5: criteria[0].runs: seed_cv needs at least two seeds per run; one seed: base"),
    ("kind: seed_cv}", "kind: seed_cv, runs: [gradient]}",
     "12:52: criteria[0].runs[0]: 'gradient' is not an eval run (score): seed_cv reads eval runs only"),
    ("k: 50}}\n  - {id: dose", "k: 200}}\n  - {id: dose",
     "8:56: runs[2].scores: k 200 exceeds score run 'gradient' topk 100"),
])
def test_a_grade_that_could_never_be_computed_is_an_error(write_spec, old, new, expected):
    assert old in SPEC
    path = write_spec(SPEC.replace(old, new))
    with pytest.raises(SpecErrors) as info:
        load_specs(["specs/spec.yaml"], path.parents[1])
    assert str(info.value.errors[0]) == f"specs/spec.yaml:{expected}"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("kind: hotspot, run: gradient,", "kind: hotspot, run: gradient, k: 50,",
     "18:61: criteria[6].k: k 50 is ignored: hotspot reads the run's whole global top-100"),
    ("kind: hotspot, run: gradient,", "kind: tail_ratio, run: gradient, k: 50,",
     "18:64: criteria[6].k: k 50 is ignored: tail_ratio reads every score of each matrix"),
    ("monotonic, run: dose}", "monotonic, run: dose, level: 0.01}",
     "16:60: criteria[4].level: level is ignored: monotonic reads every level of the run"),
    ("topk: 100,", "topk: 100, seeds: [1, 2],",
     "13:59: criteria[1].run: run 'gradient' has 2 seeds: stability needs at least 3 for a CI over seeds, so the "
     "grade stays inconclusive"),
])
def test_an_ignored_setting_or_an_undecidable_verdict_is_a_warning(write_spec, old, new, expected):
    assert old in SPEC
    path, spec = load(write_spec, SPEC.replace(old, new))
    assert [str(w) for w in spec.warnings] == [f"specs/spec.yaml:{expected}"]


def test_metric_overlap_needs_shared_seeds(write_spec):
    runs = "  - {id: other, kind: score, metrics: [grad_squared], seeds: [SEEDS]}\ncriteria:\n"
    overlap = ("  - {id: overlap, hypothesis: H1, kind: metric_overlap, a: {run: gradient, metric: grad_x_weight}, "
               "b: {run: other, metric: grad_squared}, k: 20}\n")
    text = SPEC.replace("criteria:\n", runs) + overlap
    path, spec = load(write_spec, text.replace("SEEDS", "3, 4"))
    assert [str(w) for w in spec.warnings] == [
        "specs/spec.yaml:20:104: criteria[7].b.run: runs 'gradient' and 'other' share one seed: a CI over seeds needs two, "
        "so the grade stays inconclusive"]
    path = write_spec(text.replace("SEEDS", "4, 5"))
    with pytest.raises(SpecErrors, match=r"20:104: criteria\[7\].b.run: runs 'gradient' and 'other' share no seed"):
        load_specs(["specs/spec.yaml"], path.parents[1])


def test_esa_compile_prints_warnings_and_still_writes(write_spec, tmp_path, repo_root, monkeypatch):
    for folder in ("stages", "esa"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = write_spec(SPEC.replace("kind: hotspot, run: gradient,", "kind: hotspot, run: gradient, k: 50,"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compile", "specs/spec.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: specs/spec.yaml:18:61: criteria[6].k: k 50 is ignored: hotspot reads the run's whole global top-100"]
    assert (tmp_path / "dvc.yaml").exists()
    path.write_text(SPEC.replace("level: 0.02,", "level: 0.03,"))
    result = CliRunner().invoke(main, ["compile", "specs/spec.yaml"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: specs/spec.yaml:15:63: criteria[3].level: level 0.03 is not one of run 'dose' levels (0.01, 0.02)"]
