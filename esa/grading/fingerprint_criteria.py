"""Backdoor-fingerprint evaluator: the AUC of a sibling score for backdoored vs clean, graded on the envelope of the
seeds' 95% CIs (``compare_ci``) computed by the grade stage's analysis (esa.grading.fingerprint_analysis)."""

from __future__ import annotations

import statistics

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.spec.fingerprint_criteria import FingerprintAuc

FILES = ("siblings.parquet", "profiles.parquet", "summary.json")
WHAT = {"shift": "shift of the global top-k set from the base model's",
        "profile": "leave-one-out nearest centroid on matrix profiles"}


@evaluator("fingerprint_auc")
def grade_fingerprint_auc(criterion: FingerprintAuc, ctx: GradeContext) -> Grade:
    run = ctx.spec.run(criterion.run)
    evidence = [f"results/{ctx.spec.name}/{run.id}/seed{s}/{f}" for s in run.seeds for f in FILES]
    result = ctx.analysis.get("runs", {}).get(run.id)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return Grade(None, "inconclusive", f"missing evidence: {', '.join(missing[:3])}"
                     f"{' …' if len(missing) > 3 else ''}", evidence)
    what = f"AUC of {criterion.score} ({WHAT[criterion.score]}), backdoored vs clean siblings"
    entries = [e for e in result.get("aucs", []) if e["score"] == criterion.score]
    if len(entries) != len(run.seeds):
        return Grade(None, "inconclusive", f"{what}: the analysis has {len(entries)} of {len(run.seeds)} seeds",
                     evidence)
    # Without a working backdoor there is nothing for the map to find: neither a pass nor a fail says anything.
    failed = [b for b in result.get("backdoor", []) if not b["took"]]
    if failed:
        b = failed[0]
        return Grade(None, "inconclusive", f"{what}: the backdoor did not take in seed {b['seed']} (trigger → "
                     f"target top-1 {b['top1_with_poisoned']:.2f} for poisoned siblings vs "
                     f"{b['top1_with_clean']:.2f} for clean ones)", evidence)
    ci = [min(e["ci_low"] for e in entries), max(e["ci_high"] for e in entries)]
    p = max(e["p_value"] for e in entries)
    return compare_ci(statistics.median(e["auc"] for e in entries), ci, criterion, evidence,
                      f"{what}: median over {len(entries)} seed(s) of {entries[0]['n_pos']} + {entries[0]['n_neg']} "
                      f"siblings, CI the envelope of their 95% stratified-bootstrap CIs, largest permutation "
                      f"p {p:.3g}")
