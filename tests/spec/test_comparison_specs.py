"""Criteria that compare two runs, and the pre-registration fields (exploratory, family), checked at load time:
a bad reference is one located line and exit code 2."""

import textwrap

import pytest
from click.testing import CliRunner

from esa.cli import main
from esa.spec import SpecErrors, load_spec

SPEC = textwrap.dedent("""\
    phase: 3
    title: t
    hypotheses: [{id: H1, statement: s}]
    defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2], scores: {run: gradient, k: 20}}
    runs:
      - {id: act, kind: perturb, perturbation: sign_flip, scores: {run: gradient, metric: act_mag}}
      - {id: gxw, kind: perturb, perturbation: sign_flip, levels: [1.0, 2.0]}
    criteria:
      - id: flip
        hypothesis: H1
        kind: effect_difference
        run: act
        against: gxw
    """)


def errors_of(path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_spec(path)
    return [str(e) for e in info.value.errors]


def test_the_fixture_spec_is_valid(write_spec):
    spec = load_spec(write_spec(SPEC))
    (criterion,) = spec.criteria
    assert (criterion.measure, criterion.target, criterion.comparator, criterion.threshold) == ("difference", "super",
                                                                                                ">", 0.0)
    assert criterion.holm_family() == "confirmatory" and not criterion.exploratory


def test_runs_on_other_baseline_windows_are_refused_at_the_against_key(write_spec, tmp_path, monkeypatch):
    path = write_spec(SPEC.replace("levels: [1.0, 2.0]}", "levels: [1.0, 2.0], eval_fold: 1, eval_seed: 7}"))
    message = (f"{path}:13:5: criteria[0].against: runs 'act' and 'gxw' do not share their baseline windows "
               "(eval_seed 1337 vs 7, eval_fold 0 vs 1): a paired comparison needs the same windows")
    assert errors_of(path) == [message]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["grade", str(path)])
    assert result.exit_code == 2 and result.stderr.splitlines() == [f"error: {message}"]


def test_other_models_seeds_levels_and_self_comparisons_are_refused(write_spec):
    path = write_spec(SPEC.replace("levels: [1.0, 2.0]}", "levels: [1.0, 2.0], model: ref-s, seeds: [3]}"))
    assert errors_of(path) == [
        f"{path}:13:5: criteria[0].against: runs 'act' and 'gxw' do not share their baseline windows (model ref-tiny "
        "vs ref-s): a paired comparison needs the same windows",
        f"{path}:13:5: criteria[0].against: runs 'act' and 'gxw' share no seed to pair"]
    path = write_spec(SPEC + "    level: 2.0\n    against_level: 3.0\n")
    assert errors_of(path) == [
        f"{path}:14:5: criteria[0].level: level 2 is not a level of run 'act' (its levels: 1)",
        f"{path}:15:5: criteria[0].against_level: against_level 3 is not a level of run 'gxw' (its levels: 1, 2)"]
    path = write_spec(SPEC.replace("against: gxw", "against: act"))
    assert errors_of(path) == [f"{path}:13:5: criteria[0].against: compares run 'act' with itself"]


def test_against_must_name_a_perturb_run(write_spec):
    path = write_spec(SPEC.replace("against: gxw", "against: nope"))
    assert errors_of(path) == [f"{path}:13:5: criteria[0].against: unknown run 'nope' (known: act, gxw)"]


def test_family_is_only_for_kinds_with_a_test(write_spec):
    text = SPEC + ("  - {id: s, hypothesis: H1, kind: significance, run: act, family: main}\n"
                   "  - {id: r, hypothesis: H1, kind: ratio, run: act, family: main, exploratory: true}\n")
    path = write_spec(text)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:15:52: criteria[2].family: family groups tests for Holm correction; ratio has "
                            "no test (kinds with one: effect_difference, hierarchy, significance)")
    spec = load_spec(write_spec(text.replace(" family: main,", "")))
    assert [c.holm_family() for c in spec.criteria] == ["confirmatory", "main", None]
    assert spec.criteria[2].exploratory and not spec.criteria[1].exploratory


def test_stability_difference_checks_both_metric_references(write_spec):
    text = textwrap.dedent("""\
        phase: 2
        title: t
        hypotheses: [{id: H1, statement: s}]
        defaults: {model: ref-tiny, data: stdlib-tiny}
        runs:
          - {id: sc, kind: score, metrics: [act_mag, grad_x_weight], topk: 50}
        criteria:
          - {id: st, hypothesis: H1, kind: stability_difference, a: {run: sc, metric: act_mag},
             b: {run: sc, metric: obd}, k: 60, comparator: "<", exploratory: true}
        """)
    path = write_spec(text)
    assert errors_of(path) == [
        f"{path}:9:19: criteria[0].b.metric: run 'sc' does not compute obd (it computes act_mag, grad_x_weight)",
        f"{path}:9:33: criteria[0].k: k 60 exceeds run 'sc' topk 50"]
    spec = load_spec(write_spec(text.replace("obd", "grad_x_weight").replace("k: 60", "k: 20")))
    assert spec.criteria[0].k == 20 and spec.criteria[0].exploratory
