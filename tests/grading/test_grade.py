import json
import math
import statistics
import textwrap

from esa.report.grade import grade_spec
from esa.spec import load_spec

SPEC = textwrap.dedent("""\
    phase: 1
    title: t
    hypotheses: [{id: H1, statement: s}]
    defaults: {model: ref-xs, data: stdlib-tiny, seeds: [1, 2, 3]}
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


def write_metrics(root, run, seed, ppl, vocab=512, acc=0.4, status="ok"):
    path = root / f"results/phase1/{run}/seed{seed}/metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ppl": ppl, "vocab_size": vocab, "top1_accuracy": acc, "status": status,
                                "bits_per_byte": 1.0, "n_tokens": 100}))


def grade(tmp_path, values_a, values_b, **kw):
    (tmp_path / "spec.yaml").write_text(SPEC)
    for seed, (pa, pb) in enumerate(zip(values_a, values_b), start=1):
        write_metrics(tmp_path, "a", seed, pa, **kw)
        write_metrics(tmp_path, "b", seed, pb, **kw)
    grades, path = grade_spec(load_spec(tmp_path / "spec.yaml"), tmp_path)
    assert json.loads(path.read_text())["criteria"].keys() == grades["criteria"].keys()
    return grades["criteria"]


def test_seed_cv_grades_the_worst_run_against_hand_computation(tmp_path):
    a, b = [20.0, 20.5, 19.5], [30.0, 33.0, 27.0]
    criteria = grade(tmp_path, a, b)
    expected_b = statistics.stdev(b) / statistics.fmean(b)  # 0.1
    assert math.isclose(criteria["cv"]["value"], expected_b)
    assert criteria["cv"]["status"] == "fail" and "worst run b" in criteria["cv"]["reason"]
    assert math.isclose(criteria["cv-a"]["value"], statistics.stdev(a) / 20.0)
    assert criteria["cv-a"]["status"] == "pass"
    assert criteria["fin"]["value"] == 1.0 and criteria["fin"]["status"] == "pass"
    assert math.isclose(criteria["sane"]["value"], 33.0 / 512) and criteria["sane"]["status"] == "pass"
    assert criteria["acc"]["status"] == "pass" and criteria["acc"]["value"] == 0.4


def test_suspiciously_low_ppl_fails_and_nan_is_not_finite(tmp_path):
    criteria = grade(tmp_path, [1.02, 1.03, 1.02], [float("nan"), 2.0, 2.1])
    assert criteria["sane"]["status"] == "inconclusive"  # a NaN leaves sanity ungradeable
    assert criteria["fin"]["status"] == "fail" and math.isclose(criteria["fin"]["value"], 5 / 6)
    assert criteria["cv"]["status"] == "inconclusive" and "non-finite" in criteria["cv"]["reason"]
    assert criteria["cv-a"]["status"] == "pass"


def test_suspicious_bound(tmp_path):
    criteria = grade(tmp_path, [1.02, 1.03, 1.02], [2.0, 2.0, 2.1])
    assert criteria["sane"]["status"] == "fail" and criteria["sane"]["reason"].startswith("suspicious")


def test_missing_evidence_is_inconclusive_and_summary_is_written(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    write_metrics(tmp_path, "a", 1, 20.0)
    grades, _ = grade_spec(load_spec(tmp_path / "spec.yaml"), tmp_path)
    assert {c["status"] for c in grades["criteria"].values()} == {"inconclusive"}
    assert "missing evidence" in grades["criteria"]["fin"]["reason"]
    assert grades["counts"] == {"pass": 0, "fail": 0, "inconclusive": 5}
    summary = json.loads((tmp_path / "results/phase1/summary.json").read_text())
    assert summary["runs"][0]["ppl"] == [20.0] and len(summary["runs"][0]["missing"]) == 2
