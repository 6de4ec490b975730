"""Holm families as the spec pre-registers them.

Each criterion with a test (significance, hierarchy, effect_difference) belongs to one family: the one its
``family:`` names, else ``confirmatory`` (``exploratory`` for an exploratory criterion). A family holds exactly the
distinct tests its criteria grade, so a run, seed or comparison that no criterion of the family grades never enters
it: adding a run without a criterion, or an exploratory criterion, leaves every confirmatory corrected p as it was.
Both one-sided directions are corrected over the same tests; each criterion reads the direction it grades.
"""

from __future__ import annotations

from esa.analysis.paired import holm
from esa.grading.perturb_data import criterion_level, hierarchy_steps
from esa.spec import Spec

DEFAULT_ALPHA = 0.01  # the significance criterion's default threshold


def criterion_tests(criterion, analysis: dict) -> list[dict]:
    """The tests a criterion grades, each {key, p, p_less, label}; key is the content hash of the compared NLL
    vectors, so one test graded by several criteria (or seeds) enters a family once."""
    if criterion.kind == "effect_difference":
        comparison = (analysis.get("effect_differences") or {}).get(criterion.id) or {}
        return [{"key": s["test_key"], "p": s["test"]["wilcoxon_p"], "p_less": s["test"]["wilcoxon_p_less"],
                 "label": f"{criterion.run}−{criterion.against}|{s['seed']}|{criterion.target}"}
                for s in comparison.get("per_seed", []) if "test" in s]
    result = (analysis.get("runs") or {}).get(criterion.run) or {}
    if "tests" not in result:
        return []
    level = criterion_level(criterion.level, result)
    if criterion.kind == "significance":
        pairs = {("super", criterion.control)}
    else:
        pairs = set(hierarchy_steps({r["target"] for r in result["rows"] if r["level"] == level}))
    return [{"key": t["test_key"], "p": t["test"]["wilcoxon_p"], "p_less": t["test"]["wilcoxon_p_less"],
             "label": f"{criterion.run}|{t['seed']}|{t['level']}|{t['a']}>{t['b']}"}
            for t in result["tests"] if t["level"] == level and (t["a"], t["b"]) in pairs]


def holm_families(spec: Spec, analysis: dict) -> dict:
    """Every family the spec's criteria declare: its members, its distinct tests and their corrected p-values.

    α (for the reject flags and power) is the smallest threshold of the family's significance criteria, else 0.01;
    corrected p-values do not depend on it.
    """
    gathered: dict[str, dict] = {}
    for criterion in spec.criteria:
        name = criterion.holm_family()
        if name is None:
            continue
        family = gathered.setdefault(name, {"members": [], "alphas": [], "p": {}, "p_less": {}, "tests": {}})
        family["members"].append(criterion.id)
        if criterion.kind == "significance":
            family["alphas"].append(criterion.threshold)
        for test in criterion_tests(criterion, analysis):
            family["p"][test["key"]], family["p_less"][test["key"]] = test["p"], test["p_less"]
            labels = family["tests"].setdefault(test["key"], [])
            if test["label"] not in labels:
                labels.append(test["label"])
    out = {}
    for name, family in gathered.items():
        alpha = min(family["alphas"], default=DEFAULT_ALPHA)
        greater, less = holm(family["p"], alpha=alpha), holm(family["p_less"], alpha=alpha)
        out[name] = {"members": family["members"], "alpha": alpha, "n_tests": greater.n_tests,
                     "excluded": greater.excluded, "tests": family["tests"], "adjusted": greater.adjusted,
                     "reject": greater.reject, "less": {"adjusted": less.adjusted, "reject": less.reject}}
    return out


def family_of(analysis: dict, criterion) -> dict | None:
    """The family a criterion's tests were corrected in, from the phase's analysis."""
    return (analysis.get("families") or {}).get(criterion.holm_family())


def corrected(family: dict, key: str, direction: str = "greater") -> float | None:
    """A test's Holm-corrected p in the family, one-sided ``greater`` (a more harm than b) or ``less``."""
    adjusted = family["adjusted"] if direction == "greater" else family["less"]["adjusted"]
    return adjusted.get(key)
