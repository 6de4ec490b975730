"""The research log counts and attributes only the stages that ran in a revision, and folds param noise."""

import copy

from esa.notebook.history import RunRecord, parse_exp_show
from esa.notebook.log import build_log, entry_markdown, param_changes

STAGES = {"phase1": ["smoke/seed1", "smoke/seed2"], "phase2": ["grad/seed1", "grad/seed2", "grad/seed3"],
          "phase3": ["zero/seed1"]}


def grades(name: str, graded_at: str = "2026-01-01T00:00:00Z", rerun: dict[str, float] | None = None) -> dict:
    """grades.json of one spec; ``rerun`` maps stages that ran again (on 2026-01-02) to their durations."""
    per_run = {f"{name}/{stage}": {"status": "ok", "duration_s": 245.0, "started_at": "2026-01-01T00:00:00Z",
                                   "program": "eval"} for stage in STAGES[name]}
    for stage, seconds in (rerun or {}).items():
        per_run[f"{name}/{stage}"] = dict(per_run[f"{name}/{stage}"], duration_s=seconds,
                                          started_at="2026-01-02T00:00:00Z")
    return {"phase": int(name[-1]), "spec": f"specs/{name}.yaml", "spec_sha256": "aaaa", "graded_at": graded_at,
            "counts": {"pass": 1}, "criteria": {"c": {"value": 1.0, "status": "pass"}},
            "run": {"status": "ok", "stages": len(per_run), "compute_s": sum(r["duration_s"] for r in per_run.values()),
                    "git_revs": "1234abcd", "per_run": per_run}}


def row(rev: str, all_grades: dict, params: dict | None = None, **extra) -> dict:
    return {"rev": rev, "name": extra.pop("name", None), "data": {
        "rev": rev, "timestamp": extra.pop("timestamp", None), "params": {"params.yaml": {"data": params or {}}},
        "metrics": {f"results/{n}/grades.json": {"data": g} for n, g in all_grades.items()}}, **extra}


BASE = {name: grades(name) for name in STAGES}
# The experiment changed a phase-2 param: two of its three stages and its grade stage ran; phases 1 and 3 came
# from the cache unchanged.
EXPERIMENT = {**copy.deepcopy(BASE), "phase2": grades("phase2", "2026-01-02T00:01:00Z",
                                                      rerun={"grad/seed1": 15.0, "grad/seed2": 25.0})}
EXP_SHOW = [
    row("workspace", EXPERIMENT),
    row("c2c2c2c2", BASE, name="main", timestamp="2026-01-01T12:00:00", experiments=[{"name": "owl", "revs": [
        row("e1e1e1e1", EXPERIMENT, name="owl", timestamp="2026-01-02T00:02:00")]}]),
    row("c1c1c1c1", BASE, timestamp="2026-01-01T00:00:00"),
]


def test_each_record_knows_the_revision_it_was_made_from():
    records = parse_exp_show(EXP_SHOW)
    assert [(r.kind, r.rev, r.parent) for r in records] == [
        ("workspace", "workspace", "c2c2c2c2"), ("commit", "c2c2c2c2", "c1c1c1c1"),
        ("experiment", "e1e1e1e1", "c2c2c2c2"), ("commit", "c1c1c1c1", None)]


def test_an_experiment_that_reran_phase2_is_logged_for_phase2_only_with_its_own_compute():
    entries = build_log(parse_exp_show(EXP_SHOW))
    # c2 restored everything from c1's cache; c1 is the oldest in view, so all its stages count.
    assert [(e.phase, e.source) for e in entries] == [
        ("phase2", "experiment owl (from c2c2c2c)"),
        ("phase3", "commit c1c1c1c"), ("phase2", "commit c1c1c1c"), ("phase1", "commit c1c1c1c")]
    experiment = entries[0]
    assert (experiment.stages, experiment.duration_s, experiment.cached) == (2, 40.0, 1)
    assert "- Duration: 0m 40s of stage compute over the 2 stages that ran (1 reused from the cache)" in (
        entry_markdown(experiment))
    oldest = entries[-1]
    assert (oldest.stages, oldest.duration_s, oldest.cached) == (2, 490.0, None)
    assert "over 2 stages (no earlier revision to tell which ran here)" in entry_markdown(oldest)


def test_a_regrade_without_rerun_stages_says_only_grading_ran():
    regraded = {**BASE, "phase1": grades("phase1", "2026-01-03T00:00:00Z")}
    entries = build_log(parse_exp_show([row("workspace", regraded), row("c1c1c1c1", BASE)]))
    assert [(e.phase, e.source) for e in entries][0] == ("phase1", "workspace")
    assert entries[0].stages == 0 and entries[0].duration_s == 0.0
    assert "- Duration: only the grade stage ran (2 stages reused from the cache)" in entry_markdown(entries[0])


def test_a_spec_new_in_a_revision_counts_all_its_stages():
    record = RunRecord("c2", "commit", parent="c1", grades=BASE)
    older = RunRecord("c1", "commit", grades={"phase1": BASE["phase1"]})
    entries = build_log([record, older], phase="phase3")
    assert [(e.source, e.stages, e.cached) for e in entries] == [("commit c2", 1, 0)]


def test_added_and_removed_params_fold_into_one_line():
    old = {"phase1.smoke.max_windows": 24, "baselines.gone.fold": 0}
    new = {"phase1.smoke.max_windows": 12, **{f"reference_models.ref-{size}.{field}": 1
                                              for size in ("2xs", "3xs", "4xs", "5xs") for field in "abcdefg"}}
    assert param_changes(old, new) == [
        "param phase1.smoke.max_windows: 24 → 12",
        "params 28 added (reference_models.ref-2xs, reference_models.ref-3xs, reference_models.ref-4xs and 1 more); "
        "1 removed (baselines.gone)"]
    assert param_changes(new, new) == []
