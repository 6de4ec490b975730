"""Architecture criteria pass, fail and are inconclusive on score tables built for each case, graded from the
summary esa.analysis.architecture returns (as an architecture run's analysis will hold it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from architecture_tables import dense_stats, moe_stats, seeds_of, shift_tables

from esa.analysis.architecture import analyze_architecture
from esa.grading import architecture_criteria  # noqa: F401  (registers the architecture evaluators)
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.spec.architecture_criteria import ComponentShare, ExpertBalance, ShareDifference, TopkShift

DRAWS = 300
MODELS = {"share_difference": ShareDifference, "component_share": ComponentShare, "expert_balance": ExpertBalance,
          "topk_shift": TopkShift}


def shift_pair(seeds: int, overlap: int, n: int = 50, k: int = 5):
    """Base and instruct per seed: the instruct top-k keeps ``overlap`` of the base's k in each matrix."""
    stats, topk = shift_tables(n=n)
    base, instruct = {}, {}
    for s in range(seeds):
        chosen = [list(range(10 * m, 10 * m + k)) for m in range(2)]
        kept = [c[:overlap] + list(range(40 + m, 40 + m + k - overlap)) for m, c in enumerate(chosen)]
        base[f"s{s}"], instruct[f"s{s}"] = (stats, topk(chosen)), (stats, topk(kept))
    return base, instruct


def build_summary() -> dict:
    rng = np.random.default_rng(5)
    attn = lambda centre, n: seeds_of(*(dense_stats(attn_mean=centre + 0.2 * rng.standard_normal()) for _ in range(n)))  # noqa: E731
    kept_base, kept_instruct = shift_pair(seeds=3, overlap=5)
    moved_base, moved_instruct = shift_pair(seeds=3, overlap=0)
    one_base, one_instruct = shift_pair(seeds=1, overlap=5)
    mixed_base, mixed_instruct = shift_pair(seeds=3, overlap=2)
    mixed_instruct["s1"] = shift_pair(seeds=1, overlap=5)[1]["s0"]  # one seed keeps everything: a wide CI
    models = {"heavy": attn(3.0, 4), "flat": attn(1.0, 4), "near": attn(3.05, 4), "single": attn(1.0, 1),
              "moe_even": seeds_of(*(moe_stats(expert_means=(1.0, 1.05, 0.95, 1.0)) for _ in range(3))),
              "moe_skewed": seeds_of(*(moe_stats(expert_means=(1.0, 1.0, 2.0, m)) for m in (4.0, 4.5, 5.0))),
              "moe_mixed": seeds_of(*(moe_stats(expert_means=(1.0, 1.0, 1.0, m)) for m in (1.0, 3.0, 1.2))),
              "kept_base": kept_base, "kept_instruct": kept_instruct, "moved_base": moved_base,
              "moved_instruct": moved_instruct, "one_base": one_base, "one_instruct": one_instruct,
              "mixed_base": mixed_base, "mixed_instruct": mixed_instruct}
    shifts = {"kept": ("kept_base", "kept_instruct"), "moved": ("moved_base", "moved_instruct"),
              "one_seed": ("one_base", "one_instruct"), "mixed": ("mixed_base", "mixed_instruct")}
    return analyze_architecture(models, metric="grad_x_weight", shifts=shifts, k=5, draws=DRAWS)


SUMMARY = build_summary()


def grade(kind: str, summary: dict | None = None, run: str = "arch", **fields):
    criterion = MODELS[kind](id="c", hypothesis="H1", kind=kind, run=run, **fields)
    return EVALUATORS[kind](criterion, GradeContext(None, Path("."), {"runs": {"arch": summary or SUMMARY}}))


def test_share_difference_passes_fails_and_is_inconclusive():
    g = grade("share_difference", a="heavy", b="flat", group="attention", comparator=">", threshold=0.0)
    assert g.status == "pass" and g.ci[0] > 0 and "permutation p (a > b) 0.0143" in g.reason  # 1/C(8, 4)
    assert "exact over 70 relabelings" in g.reason and "uncorrected" in g.reason
    assert grade("share_difference", a="flat", b="heavy", group="attention", threshold=0.0).status == "fail"
    near = grade("share_difference", a="heavy", b="near", group="attention", threshold=0.0)
    assert near.status == "inconclusive" and "straddles" in near.reason
    single = grade("share_difference", a="heavy", b="single", group="attention", threshold=0.0)
    assert single.status == "inconclusive" and "no CI" in single.reason
    missing = grade("share_difference", a="heavy", b="nobody", group="attention")
    assert missing.status == "inconclusive" and "nobody" in missing.reason


def test_component_share_passes_fails_and_is_inconclusive():
    g = grade("component_share", model="heavy", group="attention", measure="enrichment", threshold=1.0)
    assert g.status == "pass" and g.value > 1 and "of the score mass on" in g.reason
    assert grade("component_share", model="flat", group="attention", measure="enrichment",
                 threshold=1.5).status == "fail"
    share = SUMMARY["models"]["heavy"]["groups"]["mlp"]["share"]
    mid = grade("component_share", model="heavy", group="mlp", measure="share", threshold=float(np.mean(share["ci"])))
    assert mid.status == "inconclusive"
    assert grade("component_share", model="single", group="attention", threshold=1.0).status == "inconclusive"
    router = grade("component_share", model="moe_skewed", group="router", threshold=2.0)
    assert router.status == "pass"  # router mass 400 on 40 of 940 parameters
    assert grade("component_share", model="heavy", group="router", threshold=1.0).status == "inconclusive"


def test_expert_balance_passes_fails_and_is_inconclusive():
    assert grade("expert_balance", model="moe_even", comparator="<", threshold=1.5).status == "pass"
    skewed = grade("expert_balance", model="moe_skewed", comparator="<", threshold=1.5)
    assert skewed.status == "fail" and skewed.value == pytest.approx(4.5) and "4 experts" in skewed.reason
    assert grade("expert_balance", model="moe_mixed", threshold=1.5).status == "inconclusive"
    dense = grade("expert_balance", model="heavy", threshold=1.5)
    assert dense.status == "inconclusive" and "no expert matrices" in dense.reason


def test_topk_shift_passes_fails_and_is_inconclusive():
    moved = grade("topk_shift", shift="moved", measure="jaccard", comparator="<", threshold=0.5)
    assert moved.status == "pass" and moved.value == 0 and "random k-subsets" in moved.reason
    kept = grade("topk_shift", shift="kept", measure="jaccard_over_chance", comparator="<", threshold=2.0)
    assert kept.status == "fail" and kept.value == pytest.approx(19.0)  # Jaccard 1 against chance 1/19
    assert grade("topk_shift", shift="one_seed", threshold=0.5).status == "inconclusive"
    mixed = grade("topk_shift", shift="mixed", measure="kept", component="mlp_up", comparator="<", threshold=0.5)
    assert mixed.status == "inconclusive" and "chance 0.1" in mixed.reason
    assert grade("topk_shift", shift="absent", threshold=0.5).status == "inconclusive"
    assert grade("topk_shift", shift="mixed", measure="kept", component="router", threshold=0.5).status == \
        "inconclusive"


def test_a_missing_run_is_inconclusive_for_every_kind():
    fields = {"share_difference": {"a": "heavy", "b": "flat", "group": "mlp"},
              "component_share": {"model": "heavy", "group": "mlp"}, "expert_balance": {"model": "moe_even"},
              "topk_shift": {"shift": "kept"}}
    for kind, extra in fields.items():
        g = grade(kind, run="other", **extra)
        assert g.status == "inconclusive" and "no architecture analysis of run other" in g.reason


def test_topk_shift_component_goes_with_kept():
    with pytest.raises(ValueError, match="component"):
        TopkShift(id="c", hypothesis="H1", kind="topk_shift", run="arch", shift="kept", component="attn_q")
