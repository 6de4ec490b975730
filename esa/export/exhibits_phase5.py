"""Phase-5 exhibits: per prune run the PPL-against-sparsity chart, the table at the criteria's sparsities, the
sparsity every condition reached and the protected arm's change; per adapt run the gain-against-forgetting chart,
the per-arm table and the training-loss curves; built with the functions reports/phase5.qmd calls."""

from __future__ import annotations

from pathlib import Path

from esa.export.exhibits import Exhibits, add_grades, read_json, require, rerun_hint
from esa.report import charts_phase5 as charts5
from esa.report import tables_phase5 as tables5
from esa.report.phase2_results import Phase2Results


def build(root: Path) -> Exhibits:
    from esa.spec import load_spec

    hint = rerun_hint("phase5")
    spec = load_spec(require(root, "specs/phase5.yaml", "the phase-5 spec names the runs to export"))
    grades = read_json(require(root, "results/phase5/grades.json", hint))
    results = Phase2Results(root, phase="phase5")
    out = Exhibits("phase5")
    add_grades(out, grades)
    prune_runs = tables5.prune_runs(spec)
    if prune_runs:
        require(root, "results/phase5/pruning.parquet", hint)
    pruning = results.parquet("pruning.parquet")
    for run in prune_runs:
        summary = tables5.prune_summary(pruning, run.id)
        if summary.empty:
            continue
        sparsities = tables5.named_sparsities(spec.criteria, run.id)
        shown = ", ".join(f"{s:.0%}" for s in sparsities)
        out.figure(f"ppl-vs-sparsity-{run.id}", f"Phase 5 ({run.id}): held-out PPL against target sparsity per "
                   "arm, log scale; line: mean over seeds, band: envelope of the seeds' 95% cluster-bootstrap CIs "
                   "(documents resampled); dashed arms keep the critical set; grey rule: the dense model.",
                   charts5.prune_chart(charts5.curve_frame(summary)))
        out.table(f"pruning-{run.id}", f"Phase 5 ({run.id}): held-out PPL at {shown} sparsity [envelope of the "
                  "seeds' 95% CIs], the median per-seed ratio to magnitude, the ratio to the dense model, and the "
                  "sparsity reached (all scored weights; least and most sparse matrix).",
                  tables5.prune_table(summary, sparsities))
        out.table(f"sparsity-{run.id}", f"Phase 5 ({run.id}): target and reached sparsity of every condition.",
                  tables5.sparsity_record(summary))
        out.table(f"protected-{run.id}", f"Phase 5 ({run.id}): PPL of each method alone and with the critical "
                  "set kept; change: median over seeds of PPL(kept) / PPL(method) − 1.",
                  tables5.protection_table(tables5.protection_frame(pruning, run.id)))
    adaptation, curves = results.parquet("adaptation.parquet"), results.parquet("adaptation_curves.parquet")
    for run in tables5.adapt_runs(spec):
        summary = tables5.adapt_summary(adaptation, run.id)
        if summary.empty:
            continue
        out.figure(f"forgetting-gain-{run.id}", f"Phase 5 ({run.id}): gain on the new domain against forgetting "
                   "of the original split per arm (means over seeds; bars: envelopes of the seeds' 95% CIs).",
                   charts5.adapt_chart(summary))
        out.table(f"adaptation-{run.id}", f"Phase 5 ({run.id}): per arm, trainable weights, gain and forgetting "
                  "[95% CI], gain per million updated weights, PPL before and after, wall time.",
                  tables5.adapt_table(summary))
        loss = tables5.loss_frame(curves, run.id)
        if len(loss):
            out.figure(f"training-loss-{run.id}", f"Phase 5 ({run.id}): training loss per arm, mean over seeds.",
                       charts5.loss_chart(loss))
    return out
