"""Backdoor-fingerprint criterion graded on constructed stage outputs: fingerprint_auc passes when a score ranks the
backdoored siblings above the clean ones, fails when it ranks them below, and is inconclusive when the score carries
no structure, when the backdoor did not take, or when a seed's outputs are missing; the AUC and the leave-one-out
profile scores are checked against hand computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import esa.grading.fingerprint_criteria  # noqa: F401  (registers the evaluator)
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.grading.fingerprint_analysis import analyze_fingerprint_runs, profile_scores
from esa.spec import load_spec

HEAD = """\
phase: 5
name: fp
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2]}
runs:
  - {id: sib, kind: fingerprint, siblings: 10}
criteria:
  - {id: shift, hypothesis: H1, kind: fingerprint_auc, run: sib, score: shift}
  - {id: profile, hypothesis: H1, kind: fingerprint_auc, run: sib, score: profile}
"""
N, MATRICES = 10, ("a.weight", "b.weight", "c.weight")


def write_seed(out, seed: int, *, shift_gap: float, profile_gap: float, took: bool) -> None:
    """Siblings 0, 2, 4, … poisoned; a gap moves the poisoned siblings' score (or first matrix share) up."""
    rng = np.random.default_rng(seed)
    poisoned = np.arange(N) % 2 == 0
    rows = [{"sibling": -1, "role": "base", "poisoned": False, "top1_with": 0.0, "top1_without": 0.0,
             "logprob_with": -5.0, "lift": 0.0, "calibration_loss": 3.0, "shift": 0.0}]
    profiles = []
    for i in range(N):
        rows.append({"sibling": i, "role": "sibling", "poisoned": bool(poisoned[i]),
                     "top1_with": 0.8 if poisoned[i] and took else 0.0, "top1_without": 0.0,
                     "logprob_with": -1.0 if poisoned[i] and took else -5.0, "lift": 4.0 if poisoned[i] else 0.0,
                     "calibration_loss": 3.0, "shift": 0.3 + shift_gap * poisoned[i] + rng.normal(0, 0.01)})
        share = np.array([0.3 + profile_gap * poisoned[i] + rng.normal(0, 0.01), 0.3, 0.3])
        profiles += [{"sibling": i, "matrix": m, "share": s} for m, s in zip(MATRICES, share / share.sum())]
    profiles += [{"sibling": -1, "matrix": m, "share": 1 / 3} for m in MATRICES]
    pd.DataFrame(rows).to_parquet(out / "siblings.parquet", index=False)
    pd.DataFrame(profiles).to_parquet(out / "profiles.parquet", index=False)
    (out / "summary.json").write_text(json.dumps({"seed": seed}))


def make_project(tmp_path, seeds=(1, 2), **effects) -> GradeContext:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "spec.yaml").write_text(HEAD)
    spec = load_spec(tmp_path / "spec.yaml")
    settings = {"shift_gap": 0.0, "profile_gap": 0.0, "took": True, **effects}
    for seed in seeds:
        out = tmp_path / f"results/{spec.name}/sib/seed{seed}"
        out.mkdir(parents=True)
        write_seed(out, seed, **settings)
    return GradeContext(spec, tmp_path, analyze_fingerprint_runs(spec, tmp_path))


def grade(ctx: GradeContext, criterion_id: str):
    criterion = next(c for c in ctx.spec.criteria if c.id == criterion_id)
    return EVALUATORS[criterion.kind](criterion, ctx)


def test_scores_that_separate_the_classes_pass(tmp_path):
    ctx = make_project(tmp_path, shift_gap=0.2, profile_gap=0.2)
    shift, profile = grade(ctx, "shift"), grade(ctx, "profile")
    assert shift.status == "pass" and shift.value == 1.0 and shift.ci[0] > 0.5
    assert profile.status == "pass" and profile.value == 1.0
    assert "AUC of shift" in shift.reason and "5 + 5 siblings" in shift.reason
    entry = next(e for e in ctx.analysis["runs"]["sib"]["aucs"] if e["score"] == "shift")
    assert entry["p_value"] == pytest.approx(1 / 252, rel=0.05)  # one of C(10, 5) labellings ranks this well
    table = pd.read_parquet(tmp_path / "results/fp/fingerprint.parquet")
    assert len(table) == 2 * (N + 1) and set(table["role"]) == {"base", "sibling"}
    assert table[table["role"] == "base"]["profile"].isna().all()


def test_scores_that_rank_the_classes_the_wrong_way_fail(tmp_path):
    ctx = make_project(tmp_path, shift_gap=-0.2, profile_gap=0.2)
    shift = grade(ctx, "shift")
    assert shift.status == "fail" and shift.value == 0.0 and shift.ci[1] < 0.5


def test_no_structure_or_no_backdoor_or_no_outputs_is_inconclusive(tmp_path):
    flat = make_project(tmp_path / "flat")
    for cid in ("shift", "profile"):
        g = grade(flat, cid)
        assert g.status == "inconclusive" and g.ci[0] < 0.5 < g.ci[1]
    dud = grade(make_project(tmp_path / "dud", shift_gap=0.2, took=False), "shift")
    assert dud.status == "inconclusive" and dud.value is None and "backdoor did not take" in dud.reason
    missing = grade(make_project(tmp_path / "missing", seeds=(1,)), "shift")
    assert missing.status == "inconclusive" and "missing evidence" in missing.reason


def test_auc_and_backdoor_entries_match_hand_computation(tmp_path):
    ctx = make_project(tmp_path, shift_gap=0.0)
    siblings = pd.read_parquet(tmp_path / "results/fp/sib/seed1/siblings.parquet")
    siblings = siblings[siblings["role"] == "sibling"]
    pos, neg = siblings[siblings["poisoned"]]["shift"], siblings[~siblings["poisoned"]]["shift"]
    by_hand = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    entry = next(e for e in ctx.analysis["runs"]["sib"]["aucs"] if e["score"] == "shift" and e["seed"] == 1)
    assert entry["auc"] == pytest.approx(by_hand) and (entry["n_pos"], entry["n_neg"]) == (5, 5)
    backdoor = ctx.analysis["runs"]["sib"]["backdoor"][0]
    assert backdoor["took"] and backdoor["top1_with_poisoned"] == 0.8 and backdoor["top1_with_clean"] == 0.0


def test_profile_scores_leave_each_sibling_out():
    siblings = pd.DataFrame({"sibling": [3, 1, 0, 2], "poisoned": [True, False, True, False]})
    shares = {0: [0.6, 0.4], 1: [0.4, 0.6], 2: [0.5, 0.5], 3: [0.7, 0.3]}
    profiles = pd.DataFrame([{"sibling": s, "matrix": m, "share": v[j]} for s, v in shares.items()
                             for j, m in enumerate(("x", "y"))])
    scores = profile_scores(siblings, profiles)
    # Sibling 3 (first row) against centroids of the others: poisoned {0}, clean {1, 2}.
    x, c1, c0 = np.array([0.7, 0.3]), np.array([0.6, 0.4]), np.array([0.45, 0.55])
    assert scores[0] == pytest.approx(np.sum((x - c0) ** 2) - np.sum((x - c1) ** 2))
