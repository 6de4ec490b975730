"""stability_difference graded on top-k sets written by hand: the value and CI computed by hand (with three seeds a
bootstrap resample draws one pair of seeds or all three, so the CI's ends are the smallest and largest paired pair
difference), pass, fail and inconclusive, unpaired sides, and the data-draw gate."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from esa.grading.comparison_criteria import MIN_SEEDS  # importing it registers the evaluators
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.spec import load_spec

K = 4
# Pairwise Jaccard (seed pairs 12, 13, 23) of each family of sets, by hand.
VARIED = {1: {1, 2, 3, 4}, 2: {1, 2, 3, 5}, 3: {1, 2, 6, 7}}  # 3/5, 1/3, 1/3
STEADY = {1: {1, 2, 3, 4}, 2: {1, 2, 3, 4}, 3: {1, 2, 3, 5}}  # 1, 3/5, 3/5
SWAPPED = {1: {1, 2, 3, 4}, 2: {1, 2, 5, 6}, 3: {1, 2, 3, 7}}  # 1/3, 3/5, 1/3
SAME = {1: {1, 2, 3, 4}, 2: {1, 2, 3, 4}, 3: {1, 2, 3, 4}}  # 1, 1, 1
THIRDS = {1: {1, 2}, 2: {2, 3}, 3: {3, 1}}  # 1/3, 1/3, 1/3


def spec_text(criteria: str, q_seeds: str = "[4, 5, 6]") -> str:
    return textwrap.dedent(f"""\
        phase: 2
        title: t
        hypotheses: [{{id: H1, statement: s}}]
        defaults: {{model: ref-tiny, data: stdlib-tiny, seeds: [1, 2, 3]}}
        runs:
          - {{id: r, kind: score, metrics: [act_mag, grad_x_weight], topk: {K}}}
          - {{id: q, kind: score, metrics: [grad_x_weight], topk: {K}, seeds: {q_seeds}}}
        criteria:
        """) + textwrap.indent(textwrap.dedent(criteria), "  ")


def write_sets(root: Path, run: str, sets_by_metric: dict[str, dict[int, set[int]]], shared_docs: bool = False):
    """topk.parquet per seed (one matrix, ranks by the order of the indices) and the seed's sampling record."""
    seeds = next(iter(sets_by_metric.values()))
    for i, seed in enumerate(seeds):
        out = root / f"results/phase2/{run}/seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        rows = [{"tensor": "model.layers.0.mlp.down_proj.weight", "flat_index": index, "rank": rank,
                 "metric": metric, "mode": "per_layer", "score": 1.0 / (rank + 1)}
                for metric, sets in sets_by_metric.items() for rank, index in enumerate(sorted(sets[seed]))]
        pd.DataFrame(rows).to_parquet(out / "topk.parquet", index=False)
        docs = ["shared"] if shared_docs else [f"{run}-doc{seed}"]
        (out / "sampling.json").write_text(json.dumps({"doc_ids": docs, "window_ids": [f"{docs[0]}:{i}"]}))


def shifted(sets: dict[int, set[int]], by: int) -> dict[int, set[int]]:
    return {seed + by: members for seed, members in sets.items()}


def grade(root: Path, criteria: str, r: dict, q: dict | None = None, q_seeds: str = "[4, 5, 6]", **kw):
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(spec_text(criteria, q_seeds))
    spec = load_spec(root / "spec.yaml")
    write_sets(root, "r", r, **kw)
    if q is not None:
        write_sets(root, "q", q)
    ctx = GradeContext(spec, root, {})
    return {c.id: EVALUATORS[c.kind](c, ctx) for c in spec.criteria}


PAIRED = """\
    - {id: lt, hypothesis: H1, kind: stability_difference, a: {run: r, metric: act_mag},
       b: {run: r, metric: grad_x_weight}, comparator: "<", threshold: 0}
    - {id: gt, hypothesis: H1, kind: stability_difference, a: {run: r, metric: act_mag},
       b: {run: r, metric: grad_x_weight}, comparator: ">", threshold: 0}
    """


def test_paired_difference_and_its_ci_equal_the_hand_computation(tmp_path):
    grades = grade(tmp_path, PAIRED, {"act_mag": VARIED, "grad_x_weight": STEADY})
    # Means 19/45 and 11/15: difference −14/45. Paired pair differences −2/5, −4/15, −4/15: the CI's ends.
    lt, gt = grades["lt"], grades["gt"]
    assert lt.value == pytest.approx(-14 / 45) and lt.ci == pytest.approx([-2 / 5, -4 / 15])
    assert lt.status == "pass" and "paired (one draw of the shared seeds)" in lt.reason, lt.reason
    assert "mean Jaccard 0.422 (r/act_mag, 3 seeds) − 0.733 (r/grad_x_weight, 3 seeds)" in lt.reason
    assert gt.status == "fail" and gt.value == lt.value, gt.reason


def test_a_ci_that_straddles_the_threshold_is_inconclusive(tmp_path):
    grades = grade(tmp_path, PAIRED, {"act_mag": VARIED, "grad_x_weight": SWAPPED})
    # Pair differences 4/15, −4/15, 0: mean 0, CI [−4/15, 4/15].
    assert grades["lt"].value == pytest.approx(0.0, abs=1e-12)
    assert grades["lt"].ci == pytest.approx([-4 / 15, 4 / 15])
    assert grades["lt"].status == grades["gt"].status == "inconclusive"


def test_runs_with_other_seeds_are_resampled_independently(tmp_path):
    crit = """\
        - {id: gt, hypothesis: H1, kind: stability_difference, a: {run: r, metric: act_mag},
           b: {run: q, metric: grad_x_weight}, comparator: ">", threshold: 0.5}
        """
    grades = grade(tmp_path, crit, {"act_mag": SAME, "grad_x_weight": SAME},
                   q={"grad_x_weight": shifted(THIRDS, 3)})
    g = grades["gt"]
    assert g.status == "pass" and g.value == pytest.approx(2 / 3) and g.ci == pytest.approx([2 / 3, 2 / 3])
    assert "independent draws for each side" in g.reason


def test_fewer_than_three_seeds_shared_data_and_missing_files_are_inconclusive(tmp_path):
    crit = """\
        - {id: gt, hypothesis: H1, kind: stability_difference, a: {run: r, metric: act_mag},
           b: {run: q, metric: grad_x_weight}}
        """
    two = {seed: THIRDS[seed] for seed in (1, 2)}
    g = grade(tmp_path / "two", crit, {"act_mag": SAME, "grad_x_weight": SAME}, q={"grad_x_weight":
              shifted(two, 3)}, q_seeds="[4, 5]")["gt"]
    assert g.status == "inconclusive" and f"needs at least {MIN_SEEDS} seeds on each side" in g.reason
    g = grade(tmp_path / "shared", PAIRED, {"act_mag": VARIED, "grad_x_weight": STEADY}, shared_docs=True)["lt"]
    assert g.status == "inconclusive" and "r: seeds share data" in g.reason, g.reason
    g = grade(tmp_path / "missing", crit, {"act_mag": SAME, "grad_x_weight": SAME})["gt"]
    assert g.status == "inconclusive" and "missing evidence: results/phase2/q/seed4/topk.parquet" in g.reason
