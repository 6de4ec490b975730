"""Phase-3 exhibits. ``conditions`` is the glue reports/phase3.qmd runs before its charts and tables, so the page
and the export start from the same per-condition frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from esa.export.exhibits import Exhibits, add_grades, read_json, require, rerun_hint
from esa.report import charts_phase3 as charts3
from esa.report import tables_phase3 as tables3
from esa.report import tables_phase3_stats as stats3
from esa.report.phase2_results import Phase2Results


def conditions(runs: Sequence[Any], results: Phase2Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, summary): one row per run, seed, level and target, and its summary over seeds, for the spec's runs."""
    run_ids = [r.id for r in runs]
    rows = charts3.condition_rows(results.analysis, results.parquet("conditions.parquet"))
    rows = rows[rows["run"].isin(run_ids)].reset_index(drop=True)  # a run dropped from the spec is not reported
    return rows, charts3.condition_summary(rows, order=run_ids, analysis=results.analysis)


def stats_display(analysis: dict | None, runs: Sequence[Any], per_seed: bool = False) -> pd.DataFrame:
    """The statistics table as text cells (value [95% CI]), as the page's HTML table lays it out."""
    frame = stats3.stats_frame(analysis, runs, per_seed=per_seed)
    if frame.empty:
        return pd.DataFrame()
    headers, cells = stats3.stats_cells(frame, runs, plain=True)
    return pd.DataFrame(cells, columns=headers)


def build(root: Path) -> Exhibits:
    from esa.spec import load_spec

    hint = rerun_hint("phase3")
    spec = load_spec(require(root, "specs/phase3.yaml", "the phase-3 spec names the runs to export"))
    grades = read_json(require(root, "results/phase3/grades.json", hint))
    require(root, "results/phase3/analysis.json", hint)
    results = Phase2Results(root, phase="phase3")  # same layout: results/phase3/<run>/seed<s>/
    runs = tables3.perturb_runs(spec)
    analysis = results.analysis
    rows, summary = conditions(runs, results)
    out = Exhibits("phase3")
    add_grades(out, grades)

    out.table("perturbed", "Phase 3: what was perturbed (weights touched: super / controls).",
              tables3.perturbed_frame(runs, results))
    if not summary.empty:
        kinds = " / ".join(charts3.CI_WORDS[k] for k in dict.fromkeys(summary["ci_kind"]))
        out.figure("delta-ppl", "Phase 3: ΔPPL by condition, each run at its first level; bars: mean over seeds, "
                   f"error bars: {kinds}.", charts3.delta_chart(charts3.bar_frame(summary)))
    out.table("conditions", "Phase 3: ΔPPL (mean ± sd over the seeds that did not diverge, and the 95% CI of the "
              "mean from resampling evaluation documents) for every level of every run; diverged: seeds with "
              "non-finite perplexity of those evaluated.", tables3.conditions_frame(summary, runs))
    unit = ("Paired over evaluation documents (windows of one document are not independent); ratio = ΔPPL(a) ÷ "
            "ΔPPL(b) with a 95% cluster-bootstrap CI (documents resampled); ΔNLL diff in nats per token, mean over "
            "documents with its 95% t interval; one-sided Wilcoxon on per-document ΔNLL, Holm-corrected, and "
            "t-test p; power of that Wilcoxon at α/m.")
    out.table("statistics", f"Phase 3: paired comparisons, seeds pooled conservatively. {unit}",
              stats_display(analysis, runs))
    out.table("statistics-per-seed", f"Phase 3: paired comparisons per seed. {unit}",
              stats_display(analysis, runs, per_seed=True))
    dose = charts3.dose_frame(rows, summary)
    if not dose.empty:
        out.figure("dose-response", "Phase 3: ΔPPL against the perturbation level (log scale); points: seeds, "
                   "line: mean over seeds.", charts3.dose_chart(dose))
    out.table("dose-response", "Phase 3: Spearman ρ of mean ΔPPL against level, with a 95% CI from resampling "
              "evaluation documents and a one-sided permutation p; levels ≠ 0: levels whose ΔPPL CI excludes 0.",
              tables3.dose_table(analysis, runs))
    if not rows.empty:
        for run_id, repeat_id in tables3.repeat_pairs(spec):
            pair = ((analysis or {}).get("pairs") or {}).get(f"{run_id}|{repeat_id}")
            frame = tables3.repeat_frame(rows, run_id, repeat_id)
            said = tables3.repeat_sentence(frame, run_id, repeat_id, pair).replace("`", "")
            out.table(f"repeatability-{run_id}-{repeat_id}", f"Phase 3: repeatability, ΔPPL of {run_id} and "
                      f"{repeat_id} per shared condition. {said}", frame)
    return out
