"""Phase-4 exhibits: the ladder, the fits and their charts, the model choice per quantity, and the architecture
comparison, built with the functions reports/phase4.qmd calls."""

from __future__ import annotations

from pathlib import Path

from esa.export.exhibits import Exhibits, add_grades, read_json, require, rerun_hint
from esa.report import charts_phase4 as charts4
from esa.report import tables_phase4 as tables4
from esa.report.phase2_results import Phase2Results


def build(root: Path) -> Exhibits:
    from esa.spec import load_spec

    hint = rerun_hint("phase4")
    spec = load_spec(require(root, "specs/phase4.yaml", "the phase-4 spec names the runs to export"))
    grades = read_json(require(root, "results/phase4/grades.json", hint))
    results = Phase2Results(root, phase="phase4")
    analysis = results.json("analysis.json") or {}
    scaling = results.parquet("scaling.parquet")
    out = Exhibits("phase4")
    add_grades(out, grades)
    for run in tables4.scaling_runs(spec):
        summary = (analysis.get("runs") or {}).get(run.id) or {}
        if scaling is not None:
            out.table(f"ladder-{run.id}", f"Phase 4 ({run.id}): per model, N ({run.size.replace('_', '-')} "
                      "parameters) and each quantity's mean over seeds with its 95% t-interval.",
                      tables4.ladder_frame(scaling, run.id, summary.get("stability_chance")))
        curves, models = charts4.fit_frames(summary)
        if len(curves) and scaling is not None:
            out.figure(f"scaling-{run.id}", f"Phase 4 ({run.id}): each quantity against N, log–log; points: seeds, "
                       "red: model means, line: power law with its 95% bootstrap band over seeds, diamonds: "
                       "leave-one-out predictions.",
                       charts4.scaling_chart(charts4.points_frame(scaling, run.id), curves, models))
            out.figure(f"residuals-{run.id}", f"Phase 4 ({run.id}): log residuals of the power law per model.",
                       charts4.residual_chart(models))
        out.table(f"fits-{run.id}", f"Phase 4 ({run.id}): power-law fits; CIs from the bootstrap over seeds; the "
                  "law AIC and BIC prefer; leave-one-out and extrapolation relative errors.",
                  tables4.fits_frame(summary))
        for quantity, fit in (summary.get("quantities") or {}).items():
            out.table(f"laws-{run.id}-{quantity}", f"Phase 4 ({run.id}): model choice for {quantity}.",
                      tables4.selection_frame(fit))
    for run in tables4.architecture_runs(spec):
        summary = (analysis.get("runs") or {}).get(run.id) or {}
        if not summary.get("models"):
            continue
        out.figure(f"groups-{run.id}", f"Phase 4 ({run.id}): share of score mass per component group (bars, 95% "
                   "t-interval over seeds) and share of parameters (ticks).", charts4.groups_chart(summary))
        out.table(f"groups-{run.id}", f"Phase 4 ({run.id}): component groups.", tables4.groups_frame(summary))
        out.table(f"experts-{run.id}", f"Phase 4 ({run.id}): expert and router shares.",
                  tables4.experts_frame(summary))
        out.table(f"shifts-{run.id}", f"Phase 4 ({run.id}): base → instruct top-k overlap against chance.",
                  tables4.shifts_frame(summary))
    return out
