"""The template itself: every run kind has its test file, and every criterion kind is checked by one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes, criterion_kinds

from esa.kinds import KINDS
from esa.grading.criteria import EVALUATORS
from esa.spec.all_runs import RUN_KINDS

TEST_FILES = {"eval": "test_eval_kind.py", "score": "test_score_kind.py", "ablation_check": "test_ablation_kind.py",
              "perturb": "test_perturb_kind.py", "scaling": "test_scaling_kind.py",
              "architecture": "test_architecture_kind.py", "prune": "test_prune_kind.py",
              "adapt": "test_adapt_kind.py", "faults": "test_faults_kind.py",
              "interpret": "test_interpret_kind.py", "fingerprint": "test_fingerprint_kind.py"}


def test_every_run_kind_has_a_compile_rule_and_a_test_file():
    assert set(RUN_KINDS) == set(KINDS) == set(TEST_FILES) == set(CRITERIA_BY_RUN_KIND)
    here = Path(__file__).parent
    for kind, name in TEST_FILES.items():
        text = (here / name).read_text()
        assert "kinds_project.run(" in text, f"{name} does not run the {kind} stage program"
        assert "kinds_project.stages" in text, f"{name} does not check the {kind} compile rule"
        assert f'CRITERIA_BY_RUN_KIND["{kind}"]' in text, f"{name} does not check the {kind} graders"


def test_every_criterion_kind_is_graded_for_exactly_one_run_kind():
    listed = [kind for kinds in CRITERIA_BY_RUN_KIND.values() for kind in kinds]
    assert len(listed) == len(set(listed))
    assert set(listed) == criterion_kinds() == set(EVALUATORS)


class Recorded:
    def __init__(self, statuses):
        self._statuses = statuses

    def statuses(self):
        return self._statuses


def test_outcome_check_fails_when_an_outcome_is_missing():
    check_outcomes(Recorded({"ratio": ["fail", "inconclusive", "pass"]}), "ratio")
    for seen in ({"ratio": ["fail", "pass"]}, {}):
        with pytest.raises(AssertionError, match="add constructed cases"):
            check_outcomes(Recorded(seen), "ratio")


def test_the_recorder_saw_every_registered_criterion_kind(grading_record):
    assert set(grading_record.statuses()) == set(EVALUATORS)
