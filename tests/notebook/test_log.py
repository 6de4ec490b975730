"""The research log built from DVC experiment records: commands, changes, ordering, de-duplication."""

from esa.notebook.history import RunRecord, parse_exp_show
from esa.notebook.log import build_log, duration_text, entry_markdown


def grades(value: float, status: str, graded_at: str, sha: str = "aaaa", threshold: float = 0.05) -> dict:
    return {
        "phase": 1, "spec": "specs/phase1.yaml", "spec_sha256": sha, "graded_at": graded_at,
        "counts": {"pass": int(status == "pass"), "fail": int(status == "fail"), "inconclusive": 0},
        "criteria": {"cv": {"value": value, "comparator": "<", "threshold": threshold, "status": status}},
        "lock": {"state": "pre-registered"},
        "run": {"status": "ok", "stages": 3, "compute_s": 125.0, "git_revs": "1234abcd"},
    }


def params(windows: int) -> dict:
    return {"phase1": {"smoke": {"max_windows": windows, "seeds": [1, 2]}}, "corpora": {"stdlib": {"docs": 10}},
            "phase2": {"other": {"k": 1}}}


EXP_SHOW = [
    {"rev": "workspace", "name": None, "data": {
        "rev": "workspace", "timestamp": None,
        "params": {"params.yaml": {"data": params(12)}},
        "metrics": {"results/phase1/grades.json": {"data": grades(0.04, "pass", "2026-11-25T10:00:00Z")},
                    "results/phase1/smoke/seed1/metrics.json": {"data": {"ppl": 40.0}}}}},
    {"rev": "c0ffee1234", "name": "main", "data": {
        "rev": "c0ffee1234", "timestamp": "2026-11-24T09:00:00",
        "params": {"params.yaml": {"data": params(24)}},
        "metrics": {"results/phase1/grades.json": {"data": grades(0.07, "fail", "2026-11-24T08:59:00Z")}}},
     "experiments": [{"name": "brisk-owl", "revs": [{"rev": "e1e1e1e1", "name": "brisk-owl", "data": {
         "rev": "e1e1e1e1", "timestamp": "2026-11-24T12:00:00",
         "params": {"params.yaml": {"data": params(12)}},
         "metrics": {"results/phase1/grades.json": {"data": grades(0.04, "pass", "2026-11-24T12:00:00Z")}}}}]}]},
]


def test_exp_show_rows_become_records_with_phase_grades():
    records = parse_exp_show(EXP_SHOW)
    assert [(r.kind, r.rev) for r in records] == [("workspace", "workspace"), ("commit", "c0ffee1234"),
                                                  ("experiment", "e1e1e1e1")]
    assert set(records[0].grades) == {"phase1"}  # per-seed metrics files are not grades
    assert records[2].baseline == "c0ffee1234" and records[2].label == "experiment brisk-owl (from c0ffee1)"


def test_log_is_newest_first_with_commands_and_changes():
    entries = build_log(parse_exp_show(EXP_SHOW))
    assert [e.source for e in entries] == ["workspace", "experiment brisk-owl (from c0ffee1)", "commit c0ffee1 (main)"]
    oldest, experiment, newest = entries[2], entries[1], entries[0]
    assert oldest.command == "dvc repro grade.phase1" and oldest.changes == ["first recorded run of this spec"]
    assert experiment.command == "dvc exp run -S phase1.smoke.max_windows=12"
    assert experiment.changes == ["param phase1.smoke.max_windows: 24 → 12", "cv: fail → pass (0.07 → 0.04)"]
    assert newest.changes == ["nothing: same params, spec, code and verdicts"]
    assert oldest.status == "Success" and oldest.duration_s == 125.0


def test_workspace_identical_to_its_commit_is_listed_once():
    rows = [dict(EXP_SHOW[1], experiments=None)]
    rows.insert(0, {"rev": "workspace", "data": dict(rows[0]["data"], rev="workspace", timestamp=None)})
    entries = build_log(parse_exp_show(rows))
    assert [e.source for e in entries] == ["commit c0ffee1 (main)"]


def test_spec_edit_stage_failure_and_phase_filter():
    old = RunRecord("a", "commit", grades={"phase1": grades(0.07, "fail", "2026-01-01T00:00:00Z")}, params=params(24))
    broken = grades(0.04, "pass", "2026-01-02T00:00:00Z", sha="bbbb", threshold=0.1)
    broken["run"]["status"] = "partial"
    new = RunRecord("b", "commit", grades={"phase1": broken}, params=params(24))
    entry = build_log([new, old], phase="phase1")[0]
    assert entry.status == "Partial"
    assert "spec specs/phase1.yaml edited (sha256 aaaa → bbbb)" in entry.changes
    assert build_log([new, old], phase="phase2") == []
    text = entry_markdown(entry)
    assert "- Status: Partial" in text and "- Command: `dvc repro grade.phase1`" in text
    assert "  - cv 0.04 < 0.1 pass" in text


def test_duration_text():
    assert duration_text(125.4) == "2m 05s" and duration_text(3725) == "1h 02m 05s" and duration_text(None) == "—"


def test_entries_state_what_each_run_drew():
    graded = grades(0.04, "pass", "2026-01-02T00:00:00Z")
    graded["data_draws"] = {"smoke": "pool 800 windows / 40 docs; 5 document-disjoint parts; 64 windows from 8 docs "
                                     "per seed; no shared documents"}
    entry = build_log([RunRecord("b", "commit", grades={"phase1": graded}, params=params(24))])[0]
    text = entry_markdown(entry)
    assert "- Data drawn by the seeds:\n  - smoke: pool 800 windows / 40 docs; 5 document-disjoint parts" in text
    assert "Data drawn" not in entry_markdown(build_log([RunRecord("a", "commit", grades={
        "phase1": grades(0.04, "pass", "2026-01-02T00:00:00Z")}, params=params(24))])[0])
