"""A pytest plugin (``-p grading_recorder``) that records every status a registered criterion evaluator returns
while tests/grading runs, and writes {kind: [statuses of passing tests]} to $ESA_GRADING_RECORD at the end.

Grades from a test that failed are left out: a case only counts when its test checked it. The draw gate of
esa.grading.grade (seed comparisons on shared data are inconclusive) is recorded as the status it leaves.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

_records: list[tuple[str, str, str]] = []  # (test id, criterion kind, status)
_failed: set[str] = set()
_current = {"test": ""}


def pytest_configure(config):
    from esa.grading import grade
    from esa.grading.criteria import EVALUATORS

    def recording(kind, func):
        def evaluate(criterion, ctx):
            result = func(criterion, ctx)
            _records.append((_current["test"], kind, result.status))
            return result
        return evaluate

    for kind, func in list(EVALUATORS.items()):
        EVALUATORS[kind] = recording(kind, func)
    gate = grade.gate_on_draws

    def gated(result, criterion, spec, draws):
        result = gate(result, criterion, spec, draws)
        _records[-1] = (_records[-1][0], criterion.kind, result.status)
        return result

    grade.gate_on_draws = gated


def pytest_runtest_setup(item):
    _current["test"] = item.nodeid


def pytest_runtest_logreport(report):
    if report.failed:
        _failed.add(report.nodeid)


def pytest_sessionfinish(session):
    statuses = defaultdict(set)
    for test, kind, status in _records:
        if test not in _failed:
            statuses[kind].add(status)
    with open(os.environ["ESA_GRADING_RECORD"], "w") as handle:
        json.dump({kind: sorted(values) for kind, values in statuses.items()}, handle, sort_keys=True)
