"""Run manifests: reading, the per-phase summary kept in grades.json, the notebook's newest-first table."""

import json
from pathlib import Path

from esa.notebook.history import parse_exp_show
from esa.notebook.manifests import find_manifests, manifests_frame, run_summary
from esa.report.notebook_page import experiments_frame


def write(root: Path, run: str, started: str, total: float, status: str = "ok", device: str | None = "cpu") -> None:
    data = {"stage": "evaluate", "command": f"python stages/evaluate.py --out results/{run}", "status": status,
            "started_at": started, "timings": {"total": total}, "git_rev": "abcdef1234567890",
            "spec_sha256": "f" * 64, "versions": {"torch": "2.13.0"}, "host": "h"}
    if device:
        data["device"] = device
    path = root / "results" / run / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_summary_totals_status_and_finish_time(tmp_path):
    write(tmp_path, "phase1/smoke/seed1", "2026-01-01T10:00:00Z", 30.0)
    write(tmp_path, "phase1/smoke/seed2", "2026-01-01T10:01:00Z", 90.5, status="error")
    write(tmp_path, "corpus/stdlib", "2026-01-01T09:00:00Z", 5.0, device=None)
    records = find_manifests(tmp_path, "phase1")
    assert [r.run for r in records] == ["phase1/smoke/seed1", "phase1/smoke/seed2"]
    summary = run_summary(records)
    assert summary["status"] == "partial" and summary["stages"] == 2 and summary["stages_ok"] == 1
    assert summary["compute_s"] == 120.5
    assert summary["first_started_at"] == "2026-01-01T10:00:00Z"
    assert summary["last_finished_at"] == "2026-01-01T10:02:30Z"  # 10:01:00 + 90.5 s, truncated to seconds
    assert summary["per_run"]["phase1/smoke/seed2"]["status"] == "error"
    assert run_summary([])["status"] == "failed"
    assert all(isinstance(v, (str, int, float, dict)) for v in summary.values())  # dvc exp show drops lists


def test_manifests_table_is_newest_first(tmp_path):
    write(tmp_path, "phase1/smoke/seed1", "2026-01-01T10:00:00Z", 30.0)
    write(tmp_path, "corpus/stdlib", "2026-01-01T09:00:00Z", 5.0, device=None)
    write(tmp_path, "phase2/gradient/seed1", "2026-01-02T08:00:00Z", 300.0, device="cuda:0")
    frame = manifests_frame(find_manifests(tmp_path))
    assert list(frame["run"]) == ["phase2/gradient/seed1", "phase1/smoke/seed1", "corpus/stdlib"]
    assert list(frame["device"]) == ["cuda:0", "cpu", "cpu"]
    assert frame.loc[0, "git_rev"] == "abcdef12" and frame.loc[0, "torch"] == "2.13.0"


def test_experiments_table_names_the_changed_params():
    rows = [{"rev": "c1", "name": "main", "data": {
        "timestamp": "2026-01-01T10:00:00", "params": {"params.yaml": {"data": {"phase1": {"smoke": {"k": 1}}}}},
        "metrics": {"results/phase1/grades.json": {"data": {"counts": {"pass": 1, "fail": 2, "inconclusive": 0}}}}},
        "experiments": [{"revs": [{"rev": "e1", "name": "tidy-cat", "data": {
            "timestamp": "2026-01-01T11:00:00", "params": {"params.yaml": {"data": {"phase1": {"smoke": {"k": 5}}}}},
            "metrics": {"results/phase1/grades.json": {"data": {"counts": {"pass": 3, "fail": 0,
                                                                          "inconclusive": 0}}}}}}]}]},
            {"rev": "c0", "data": {"metrics": {"results/phase1/grades.json": {"error": {"type": "FileNotFoundError"}}}}}]
    frame = experiments_frame(parse_exp_show(rows))
    # Newest first; c0 has no results (no dvc.lock in that commit), so it is left out.
    assert list(frame["run"]) == ["experiment tidy-cat (from c1)", "commit c1 (main)"]
    assert list(frame["phase1"]) == ["3/0/0", "1/2/0"]
    assert frame.loc[0, "params changed"] == "phase1.smoke.k=5"
