"""Criteria that compare two runs, and the pre-registration fields (exploratory, family), checked at load time:
a bad reference is one located line."""

import textwrap

import pytest

from esa.spec import SpecErrors, load_spec


def errors_of(path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_spec(path)
    return [str(e) for e in info.value.errors]


def test_family_is_only_for_kinds_with_a_test(write_spec):
    text = textwrap.dedent("""\
        phase: 3
        title: t
        hypotheses: [{id: H1, statement: s}]
        defaults: {model: ref-tiny, data: stdlib-tiny, scores: {run: gradient, k: 20}}
        runs:
          - {id: act, kind: perturb, perturbation: sign_flip}
        criteria:
          - {id: s, hypothesis: H1, kind: significance, run: act, family: main}
          - {id: r, hypothesis: H1, kind: ratio, run: act, family: main, exploratory: true}
        """)
    path = write_spec(text)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:9:52: criteria[1].family: family groups tests for Holm correction; ratio has "
                            "no test (kinds with one: hierarchy, significance)")
    spec = load_spec(write_spec(text.replace(" family: main,", "")))
    assert spec.criteria[0].holm_family() == "main" and not spec.criteria[0].exploratory
    assert spec.criteria[1].exploratory and spec.criteria[1].holm_family() is None


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
