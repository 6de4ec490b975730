"""Criteria that compare two runs, checked at load time: a bad reference is one located line."""

import textwrap

import pytest

from esa.spec import SpecErrors, load_spec


def errors_of(path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_spec(path)
    return [str(e) for e in info.value.errors]


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
             b: {run: sc, metric: obd}, k: 60, comparator: "<"}
        """)
    path = write_spec(text)
    assert errors_of(path) == [
        f"{path}:9:19: criteria[0].b.metric: run 'sc' does not compute obd (it computes act_mag, grad_x_weight)",
        f"{path}:9:33: criteria[0].k: k 60 exceeds run 'sc' topk 50"]
    spec = load_spec(write_spec(text.replace("obd", "grad_x_weight").replace("k: 60", "k: 20")))
    assert spec.criteria[0].k == 20
