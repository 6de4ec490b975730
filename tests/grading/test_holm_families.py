"""Holm families are part of the pre-registration: a criterion's corrected p-value depends on the criteria of its
family only, never on runs or comparisons no criterion of the family grades; exploratory criteria are corrected
apart and marked in grades.json and on the page's criteria table."""

from __future__ import annotations

import pytest
from statsmodels.stats.multitest import multipletests
from test_grade_phase3 import Project, chain

from esa.grading.grade import grade_spec
from esa.report.tables import grade_table

SIGNIFICANCE = "- {id: sig, hypothesis: H1, kind: significance, run: a}\n"
RUN_A = "- {id: a, kind: perturb, perturbation: zero}\n"
RUN_B = "- {id: b, kind: perturb, perturbation: sign_flip}\n"


def graded(tmp_path, runs: str, criteria: str, *, b: dict | None = None) -> tuple[dict, Project]:
    project = Project(tmp_path, runs, criteria)
    project.conditions("a", chain(0.1, 0.02, 0.0))
    if b is not None:
        project.conditions("b", b)
    grades = {c.id: project.grade(c.id) for c in project.spec.criteria}
    return grades, project


def test_adding_a_run_without_a_criterion_leaves_the_corrected_p_as_it_was(tmp_path):
    before, alone = graded(tmp_path / "alone", RUN_A, SIGNIFICANCE)
    after, added = graded(tmp_path / "added", RUN_A + RUN_B, SIGNIFICANCE, b=chain(0.3, 0.01, 0.0))
    assert after["sig"].p == before["sig"].p and after["sig"].value == before["sig"].value
    assert after["sig"].reason == before["sig"].reason and after["sig"].status == before["sig"].status
    assert 0 < before["sig"].p < 1
    # What changed is the descriptive correction over every comparison the analysis computed.
    assert added.analysis["holm"]["n_tests"] == 2 * alone.analysis["holm"]["n_tests"] == 18
    assert added.analysis["families"] == alone.analysis["families"]


def test_an_exploratory_criterion_is_corrected_apart_unless_it_names_the_family(tmp_path):
    before, _ = graded(tmp_path / "alone", RUN_A, SIGNIFICANCE)
    explore = "- {id: explore, hypothesis: H1, kind: significance, run: b, exploratory: true}\n"
    after, project = graded(tmp_path / "explore", RUN_A + RUN_B, SIGNIFICANCE + explore, b=chain(0.3, 0.01, 0.0))
    assert after["sig"].p == before["sig"].p and after["sig"].family == "confirmatory"
    assert after["explore"].exploratory and after["explore"].family == "exploratory"
    families = project.analysis["families"]
    assert families["confirmatory"]["members"] == ["sig"] and families["exploratory"]["members"] == ["explore"]
    # Named into one family, the two criteria's six distinct tests are corrected together, as declared.
    joint = SIGNIFICANCE.replace("run: a}", "run: a, family: main}") + explore.replace("true}", "true, family: main}")
    # b's effect is weaker than a's: in the joint family a's tests rank first, where Holm's factors are largest.
    grades, project = graded(tmp_path / "joint", RUN_A + RUN_B, joint, b=chain(0.02, 0.015, 0.0))
    family = project.analysis["families"]["main"]
    assert family["n_tests"] == 6 and set(family["members"]) == {"sig", "explore"}
    raw = {t["test_key"]: t["test"]["wilcoxon_p"] for run in ("a", "b")
           for t in project.analysis["runs"][run]["tests"] if t["b"] == "random_k"}
    expected = dict(zip(raw, multipletests(list(raw.values()), method="holm")[1]))
    sig_keys = [t["test_key"] for t in project.analysis["runs"]["a"]["tests"] if t["b"] == "random_k"]
    assert grades["sig"].p == pytest.approx(max(expected[k] for k in sig_keys))
    assert grades["sig"].p > before["sig"].p and grades["sig"].family == "main"


def test_a_family_counts_a_test_graded_twice_once(tmp_path):
    # Every seed perturbs the same super set and bottom_k is deterministic: three seeds, one test.
    run = "- {id: a, kind: perturb, perturbation: zero, scores: {run: gradient, k: 20, seed: 1}}\n"
    crit = ("- {id: s1, hypothesis: H1, kind: significance, run: a, control: bottom_k}\n"
            "- {id: s2, hypothesis: H1, kind: significance, run: a, control: bottom_k, threshold: 0.05}\n")
    project = Project(tmp_path, run, crit)
    project.conditions("a", chain(0.1, 0.02, 0.01), fixed=("super", "bottom_k"))
    grade = project.grade("s1")
    family = project.analysis["families"]["confirmatory"]
    assert family["n_tests"] == 1 and family["alpha"] == 0.01 and len(next(iter(family["tests"].values()))) == 3
    test = next(t for t in project.analysis["runs"]["a"]["tests"] if t["b"] == "bottom_k")
    assert grade.p == test["test"]["wilcoxon_p"]  # Holm over one test leaves it as it is


def test_grades_json_and_the_criteria_table_mark_exploratory_criteria(tmp_path):
    crit = SIGNIFICANCE + ("- {id: ratio-b, hypothesis: H1, kind: ratio, run: b, threshold: 2, exploratory: true}\n")
    project = Project(tmp_path, RUN_A + RUN_B, crit)
    project.conditions("a", chain(0.1, 0.02, 0.0))
    project.conditions("b", chain(0.3, 0.01, 0.0))
    grades, _ = grade_spec(project.spec, project.root)
    sig, ratio = grades["criteria"]["sig"], grades["criteria"]["ratio-b"]
    assert (sig["exploratory"], sig["family"]) == (False, "confirmatory")
    assert (ratio["exploratory"], ratio["family"]) == (True, None) and ratio["status"] == "pass"
    html = grade_table(grades)
    assert html.count('class="exploratory"') == 1 and "Holm family confirmatory" in html
