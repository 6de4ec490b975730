"""Phase-1 criteria graded on constructed results: each kind passes, fails and is inconclusive on data built for
the case; seed criteria are graded only when the seeds' recorded draws are disjoint."""

import json
import math
import statistics
import textwrap

import numpy as np
import pandas as pd
from scipy import stats

from esa.analysis.eval_ci import cv_ci, metric_ci
from esa.grading.criteria_values import criterion_values
from esa.grading.grade import grade_spec
from esa.spec import load_spec

SPEC = textwrap.dedent("""\
    phase: 1
    title: t
    hypotheses: [{id: H1, statement: s}]
    defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2, 3, 4, 5]}
    runs:
      - {id: a, kind: eval, protocol: smoke}
      - {id: b, kind: eval, protocol: standard}
    criteria:
      - {id: cv, hypothesis: H1, kind: seed_cv, threshold: 0.05}
      - {id: cv-a, hypothesis: H1, kind: seed_cv, runs: [a], threshold: 0.05}
      - {id: fin, hypothesis: H1, kind: finite}
      - {id: sane, hypothesis: H1, kind: ppl_sanity, threshold: 0.1}
      - {id: acc, hypothesis: H1, kind: metric_bound, metric: top1_accuracy, aggregate: min, comparator: ">", threshold: 0.3}
    """)
SEEDS = [1, 2, 3, 4, 5]


def write_seed(root, run, seed, ppl, *, vocab=512, acc=0.4, status="ok", docs=None, spread=0.02, shared=False):
    """metrics.json, sequences.parquet (10 documents × 4 windows around the seed's PPL) and sampling.json."""
    out = root / f"results/phase1/{run}/seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    docs = docs or [f"{'shared' if shared else run + str(seed)}-doc{j}" for j in range(10)]
    rows = []
    for doc in docs:
        z = rng.standard_normal()
        level = math.log(ppl) * (1 + spread * z) if math.isfinite(ppl) else ppl
        correct = round(100 * acc * (1 + spread * z))
        for start in range(4):
            rows.append({"window_id": f"{doc}:{start}", "doc_id": doc, "start": start, "n_tokens": 100,
                         "n_bytes": 300, "nll_sum": 100 * level, "n_correct": correct})
    pd.DataFrame(rows).to_parquet(out / "sequences.parquet", index=False)
    (out / "metrics.json").write_text(json.dumps({"ppl": ppl, "vocab_size": vocab, "top1_accuracy": acc,
                                                  "status": status, "bits_per_byte": 1.0, "n_tokens": 4000}))
    (out / "sampling.json").write_text(json.dumps({
        "unit": "document", "folds": len(SEEDS), "fold": SEEDS.index(seed), "pool_windows": 400, "pool_docs": 100,
        "fold_windows": 80, "fold_docs": 20, "requested": 40, "n_windows": 40, "shortfall": False,
        "n_docs": len(docs), "doc_ids": sorted(docs), "window_ids": sorted(r["window_id"] for r in rows)}))


def grade(tmp_path, values_a, values_b, **kw):
    (tmp_path / "spec.yaml").write_text(SPEC)
    for seed, pa, pb in zip(SEEDS, values_a, values_b):
        write_seed(tmp_path, "a", seed, pa, **kw)
        write_seed(tmp_path, "b", seed, pb, **kw)
    grades, path = grade_spec(load_spec(tmp_path / "spec.yaml"), tmp_path)
    assert json.loads(path.read_text())["criteria"].keys() == grades["criteria"].keys()
    return grades


def test_cv_interval_matches_the_chi_square_formula():
    values = [20.0, 20.5, 19.5, 20.2, 19.9]
    cv, lo, hi = cv_ci(values)
    s, m = statistics.stdev(values), statistics.fmean(values)
    assert math.isclose(cv, s / m)
    assert math.isclose(hi, s * math.sqrt(4 / stats.chi2.ppf(0.025, 4)) / m)
    assert math.isclose(lo, s * math.sqrt(4 / stats.chi2.ppf(0.975, 4)) / m)


def test_seed_cv_passes_fails_and_is_inconclusive_by_its_interval(tmp_path):
    tight = [20.0, 20.1, 19.9, 20.05, 19.95]  # CV 0.4%: upper bound ≈ 1.2% < 5%
    wide = [30.0, 36.0, 24.0, 33.0, 27.0]  # CV 16%: lower bound ≈ 9.5% > 5%
    middle = [20.0, 20.9, 19.1, 20.6, 19.4]  # CV 3.6%: interval [2.1%, 10%] straddles 5%
    grades = grade(tmp_path, tight, wide)["criteria"]
    assert grades["cv-a"]["status"] == "pass" and grades["cv-a"]["ci"][1] < 0.05
    assert grades["cv"]["status"] == "fail" and "run b" in grades["cv"]["reason"]
    assert math.isclose(grades["cv"]["value"], statistics.stdev(wide) / statistics.fmean(wide))
    grades = grade(tmp_path, middle, middle)["criteria"]
    assert grades["cv-a"]["status"] == "inconclusive" and "straddles" in grades["cv-a"]["reason"]


def test_seeds_that_share_documents_are_never_graded(tmp_path):
    tight = [20.0, 20.1, 19.9, 20.05, 19.95]
    grades = grade(tmp_path, tight, tight, shared=True)
    assert grades["criteria"]["cv-a"]["status"] == "inconclusive"
    assert "share data" in grades["criteria"]["cv-a"]["reason"]
    assert grades["draws"]["a"]["max_shared_docs"] == 10


def test_finite_passes_and_fails_on_counts(tmp_path):
    ok = [20.0, 20.1, 19.9, 20.05, 19.95]
    assert grade(tmp_path, ok, ok)["criteria"]["fin"]["status"] == "pass"
    grades = grade(tmp_path, ok, [float("nan"), 20.0, 20.1, 19.9, 20.0])["criteria"]
    assert grades["fin"]["status"] == "fail" and math.isclose(grades["fin"]["value"], 9 / 10)
    assert grades["sane"]["status"] == "inconclusive"  # a NaN leaves sanity ungradeable


def test_grades_json_carries_every_criterion_value_as_numbers_only(tmp_path):
    tight, wide = [20.0, 20.1, 19.9, 20.05, 19.95], [30.0, 36.0, 24.0, 33.0, 27.0]
    grades = grade(tmp_path, tight, wide)
    written = json.loads((tmp_path / "results/phase1/grades.json").read_text())["criteria_values"]
    assert written.keys() == grades["criteria"].keys()
    cv_a, cv = written["cv-a"], written["cv"]
    assert cv_a["status_code"] == 1 and cv["status_code"] == -1
    assert math.isclose(cv["value"], statistics.stdev(wide) / statistics.fmean(wide))
    assert [cv_a["ci_low"], cv_a["ci_high"]] == grades["criteria"]["cv-a"]["ci"]
    numbers = [v for c in written.values() for v in c.values()]
    assert all(v is None or type(v) in (int, float) for v in numbers)  # DVC makes a column of each number


def test_criterion_values_drop_what_is_not_a_finite_number():
    values = criterion_values({"value": float("nan"), "status": "inconclusive", "ci": [float("-inf"), 2.0]})
    assert values == {"value": None, "status_code": 0, "ci_low": None, "ci_high": 2.0}
    assert criterion_values({"value": 3, "status": "fail", "ci": None})["status_code"] == -1


def test_ppl_sanity_passes_fails_and_is_inconclusive(tmp_path):
    ok = [20.0, 20.1, 19.9, 20.05, 19.95]
    grades = grade(tmp_path, ok, ok)["criteria"]
    assert grades["sane"]["status"] == "pass" and grades["sane"]["ci"][1] < 0.1
    grades = grade(tmp_path, [2.0] * 5, ok)["criteria"]  # below 3 on held-out text: a bug until proven otherwise
    assert grades["sane"]["status"] == "fail" and grades["sane"]["reason"].startswith("suspicious")
    # PPL 51 of a 512 vocabulary: 0.0996 < 0.1, but documents vary by 20%: the interval reaches past 0.1
    grades = grade(tmp_path, ok, [51.0] * 5, spread=0.2)["criteria"]
    assert grades["sane"]["status"] == "inconclusive"


def test_metric_bound_uses_the_document_bootstrap(tmp_path):
    ok = [20.0, 20.1, 19.9, 20.05, 19.95]
    assert grade(tmp_path, ok, ok, acc=0.4)["criteria"]["acc"]["status"] == "pass"
    assert grade(tmp_path, ok, ok, acc=0.2)["criteria"]["acc"]["status"] == "fail"
    grades = grade(tmp_path, ok, ok, acc=0.3, spread=0.1)["criteria"]  # documents scatter around the threshold
    assert grades["acc"]["status"] == "inconclusive"


def test_document_bootstrap_resamples_documents_not_windows():
    rows = [{"doc_id": f"d{d}", "n_tokens": 100, "n_bytes": 300, "n_correct": 40,
             "nll_sum": 100 * (3.0 if d % 2 else 2.0)} for d in range(2) for _ in range(50)]
    lo, hi, n = metric_ci(pd.DataFrame(rows), "nll_per_token", n_boot=4000)
    assert n == 2  # 100 windows but two documents: the interval spans nearly the two documents' values
    assert lo < 2.1 and hi > 2.9


def test_missing_evidence_is_inconclusive_and_summary_is_written(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    write_seed(tmp_path, "a", 1, 20.0)
    grades, _ = grade_spec(load_spec(tmp_path / "spec.yaml"), tmp_path)
    assert {c["status"] for c in grades["criteria"].values()} == {"inconclusive"}
    assert "missing evidence" in grades["criteria"]["fin"]["reason"]
    assert grades["counts"] == {"pass": 0, "fail": 0, "inconclusive": 5}
    summary = json.loads((tmp_path / "results/phase1/summary.json").read_text())
    assert summary["runs"][0]["ppl"] == [20.0] and len(summary["runs"][0]["missing"]) == 4
