"""Phase-5 exhibits: per prune run the PPL-against-sparsity chart, the table at the criteria's sparsities, the
sparsity every condition reached and the protected arm's change; per adapt run the gain-against-forgetting chart,
the per-arm table and the training-loss curves; per faults run the collapse rates and the attack's flips; per
interpret run the massive activation, the super weights' effects, the heads and the probes; built with the functions
reports/phase5.qmd calls."""

from __future__ import annotations

from pathlib import Path

from esa.export.exhibits import Exhibits, add_grades, read_json, require, rerun_hint
from esa.report import charts_interpret as charts_int
from esa.report import charts_phase5 as charts5
from esa.report import charts_security as charts_sec
from esa.report import tables_interpret as tables_int
from esa.report import tables_phase5 as tables5
from esa.report import tables_security as tables_sec
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
    add_faults(out, spec, results)
    add_interpret(out, spec, results)
    return out


def add_faults(out: Exhibits, spec, results: Phase2Results) -> None:
    """Per faults run with results: collapse rates against the bit-error rate, and the attack when there is one."""
    attacks = results.parquet("attacks.parquet")
    for run in tables_sec.fault_runs(spec):
        result = results.run_analysis(run.id)
        if not result.get("collapse"):
            continue
        frame = tables_sec.collapse_frame(result)
        out.figure(f"collapse-rate-{run.id}", f"Phase 5 ({run.id}): share of random bit-error draws that collapsed "
                   f"the model (PPL above {run.collapse_factor:g}× the format's baseline or not finite; all seeds "
                   "pooled; bars: Wilson 95% CIs) against the rate per stored bit, per exempt set.",
                   charts_sec.collapse_chart(frame))
        out.table(f"collapse-{run.id}", f"Phase 5 ({run.id}): collapsed/trials (rate [Wilson 95% CI]) per storage "
                  "format, bit-error rate and exempt set.", tables_sec.collapse_table(frame))
        flips = tables_sec.attack_frame(attacks, run.id)
        if len(flips):
            out.figure(f"ppl-per-flip-{run.id}", f"Phase 5 ({run.id}): held-out PPL / baseline after each flip, "
                       "one line per attack arm and seed (log scale; a non-finite PPL drawn at 1e12); dashed: the "
                       "collapse threshold.", charts_sec.attack_chart(flips, run.collapse_factor))
            out.table(f"flips-to-collapse-{run.id}", f"Phase 5 ({run.id}): flips to collapse per attack arm and "
                      "seed (>budget: no collapse within it) and the first flip made.",
                      tables_sec.attack_table(result, flips))


def add_interpret(out: Exhibits, spec, results: Phase2Results) -> None:
    """Per interpret run with results: the super weights' activations and effects, the heads, the probes."""
    superweights, heads = results.parquet("superweights.parquet"), results.parquet("head_critical.parquet")
    accuracy = results.parquet("probe_accuracy.parquet")
    for run in tables_int.interpret_runs(spec):
        result = results.run_analysis(run.id)
        if not result:
            continue
        activity = tables_int.activation_frame(superweights, run.id)
        if len(activity):
            out.figure(f"massive-activation-{run.id}", f"Phase 5 ({run.id}): |activation| at each super weight's "
                       "dimension over the largest other, per decoder layer, with the weight in place and zeroed "
                       "(log scale; dashed: ratio 1; dotted: the weight's layer).",
                       charts_int.activation_chart(activity))
        if result.get("superweights"):
            out.table(f"superweight-effects-{run.id}", f"Phase 5 ({run.id}): PPL and attention-sink mass with each "
                      "super weight in place and zeroed, per seed [95% cluster-bootstrap CIs, documents resampled].",
                      tables_int.effect_table(result))
        frame = tables_int.head_frame(heads, run.id)
        if len(frame):
            out.figure(f"heads-{run.id}", f"Phase 5 ({run.id}): critical weights per attention head against its "
                       "sink share and attention entropy (a point per head, means over seeds; colour: layer).",
                       charts_int.head_chart(frame))
            out.table(f"head-correlations-{run.id}", f"Phase 5 ({run.id}): Spearman rho of critical weights per "
                      "head with each statistic, per seed [95% CI, layers resampled].",
                      tables_int.correlation_table(result))
        probes = tables_int.probe_frame(accuracy, run.id)
        if len(probes):
            out.figure(f"probe-accuracy-{run.id}", f"Phase 5 ({run.id}): probe accuracy per category as is, with "
                       "the critical set zeroed and with random sets zeroed (bars: mean over seeds; dots: seeds).",
                       charts_int.probe_chart(probes))
            out.table(f"probe-drops-{run.id}", f"Phase 5 ({run.id}): probe accuracy per category and seed, and the "
                      "drop (random − critical) [95% CI, items resampled].", tables_int.drop_table(result))
