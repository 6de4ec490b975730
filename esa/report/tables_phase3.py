"""Phase-3 tables and plain-language findings, built from the spec's perturb runs and the grade stage's analysis."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from esa.report.charts_phase3 import ALL_TARGETS, COUNT_COLUMNS, TARGETS
from esa.report.phase2_results import Phase2Results
from esa.report.tables import DASH, as_number, fmt

# Perturbations whose level (the run's scale or levels) sets their strength; the others ignore it.
LEVELLED = ("scale", "gauss_noise", "grad_step", "correlated", "adaptive")
# A weight below 2 in magnitude has its top exponent bit clear; setting it adds 2^(e − 1) to the exponent
# (e exponent bits), i.e. multiplies the weight by 2^(2^(e − 1)).
EXPONENT_MSB_FACTOR = {"float32": "2^128", "bfloat16": "2^128", "float16": "2^16", "float64": "2^1024"}
STATUS_RANK = {"diverged": 0, "undefined": 1, "unstable": 2, "inconclusive": 3, "ok": 4}


def perturb_runs(spec: Any) -> list[Any]:
    return [run for run in getattr(spec, "runs", []) if getattr(run, "kind", None) == "perturb"]


def _finite(values: Iterable[Any]) -> list[float]:
    xs = (as_number(v) for v in values)
    return [float(x) for x in xs if x is not None and math.isfinite(x)]


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _span(values: Iterable[Any]) -> str:
    xs = [int(x) for x in _finite(values)]
    if not xs:
        return DASH
    return fmt(xs[0]) if min(xs) == max(xs) else f"{fmt(min(xs))}–{fmt(max(xs))}"


# --- What was perturbed ----------------------------------------------------------------------------------


def levels_of(run: Any) -> list[float]:
    return list(run.levels or [run.scale])


def describe(run: Any, level: float | None = None) -> str:
    """The perturbation in words; ``level`` fills in its strength (default: the run's only level, else "level")."""
    p = run.perturbation
    several = len(levels_of(run)) > 1
    lv = fmt(level) if level is not None else "level" if several else fmt(levels_of(run)[0])
    sigma = f"{lv}·|w|" if getattr(run, "sigma_mode", "abs") == "abs" else f"{lv}·std(matrix)"
    if p == "zero":
        return "zeroing"
    if p == "sign_flip":
        return "sign flip"
    if p == "bit_flip":
        bit = {"exponent_msb": "exponent MSB", "random": "a random bit"}.get(str(run.bit), f"bit {run.bit}")
        return f"bit flip: {bit} in {_pct(run.prob)} of the set"
    if p == "gauss_noise":
        return f"Gaussian noise σ = {sigma}"
    if p == "scale":
        return f"scaling w ← {lv}·w"
    if p == "grad_step":
        return f"gradient step ({run.direction}) ε = {lv}·|w|"
    if p == "correlated":
        inner = f"Gaussian noise σ = {sigma}" if run.inner == "gauss_noise" else run.inner.replace("_", " ")
        return f"correlated: whole {run.unit} of each weight, {inner}"
    if p == "adaptive":
        return f"score-adaptive noise σ = {lv}·|w|·|score| / max |score|"
    return str(p)


def superset_sentence(runs: Sequence[Any]) -> str:
    """Where the super set comes from, once when every run shares it, else per run."""
    def ref_text(ref: Any) -> str:
        where = "per matrix" if ref.mode == "per_layer" else "over all scored matrices"
        seed = (f"scoring seed {ref.seed} for every perturbation seed (only the controls are redrawn)"
                if ref.seed is not None else "each perturbation seed taking the super set of the scoring seed at "
                "the same position (so seeds resample the super set too)")
        return (f"the top-{fmt(ref.k)} weights {where} by `{ref.metric}` ({ref.mode}) from score run `{ref.run}` "
                f"of `{ref.spec}`, {seed}")

    refs = {run.id: ref_text(run.scores) for run in runs}
    if len(set(refs.values())) == 1:
        return (f"**The super set** is {next(iter(refs.values()))}. It is read from that run's `topk.parquet`, "
                "never rescored.")
    return "**The super set** differs between runs: " + "; ".join(f"`{r}`: {t}" for r, t in refs.items()) + "."


def controls_sentence(runs: Sequence[Any]) -> str:
    used = list(dict.fromkeys(c for run in runs for c in run.controls))
    parts = {
        "random_k": "`random_k` draws uniformly without repeats from each matrix with the super set excluded, a "
                    "fresh draw per seed",
        "random_matched": "`random_matched` draws random weights of the same matrix and the same binary exponent "
                          "as each super weight (magnitude-matched), a fresh draw per seed",
        "bottom_k": "`bottom_k` takes each matrix's lowest non-zero scores of the same metric (Phase 2's per-matrix "
                    "bottom-k candidates), any super weight removed first",
    }
    if not used:
        return "No run has a control set."
    return ("**Controls** have the super set's number of weights in every matrix (the same per-matrix counts), so "
            "a difference in damage comes from which weights are hit, not from where they sit: "
            + "; ".join(parts[c] for c in used) + ".")


def evaluation_text(run: Any, result: Mapping[str, Any]) -> str:
    """Which document-disjoint part of the evaluation pool a run read, and how much text that was."""
    folds = getattr(run, "eval_folds", 1)
    where = f"fold {getattr(run, 'eval_fold', 0)} of {folds}" if folds > 1 else "whole pool"
    if not result.get("n_windows"):
        return where
    docs = f"{fmt(result['n_docs'])} documents" if result.get("clustered") else "no document ids"
    return f"{where}: {docs}, {fmt(result['n_windows'])} windows"


def _counts(rows: Sequence[Mapping[str, Any]], target: str) -> str:
    """grew/shrank/unchanged weights of one set (spans over seeds and levels); a dash without the columns."""
    mine = [r for r in rows if r.get("target") == target]
    if not any(r.get(c) is not None for r in mine for c in COUNT_COLUMNS):
        return DASH
    return "/".join(_span(r.get(c) for r in mine) for c in COUNT_COLUMNS)


def perturbed_frame(runs: Sequence[Any], results: Phase2Results) -> pd.DataFrame:
    """One row per perturb run: the perturbation, its levels, targets, seeds found, weights touched, the
    evaluation text (fold, documents, windows) and, when recorded, how many weights grew/shrank/stayed per set."""
    rows = []
    for run in runs:
        summaries = list(results.per_seed(run, "summary.json").values())
        conditions = [c for s in summaries for c in s.get("conditions") or []]
        touched = {t: _span(c.get("n_touched") for c in conditions if c.get("target") == t) for t in ALL_TARGETS}
        targets = ["super", *run.controls]
        result = results.run_analysis(run.id)
        counts = [_counts(result.get("rows") or [], t) for t in targets]
        rows.append({
            "run": run.id,
            "perturbation": describe(run),
            "levels": ", ".join(fmt(x) for x in levels_of(run)) if run.perturbation in LEVELLED else DASH,
            "targets": ", ".join(targets),
            "seeds": f"{len(summaries)}/{len(run.seeds)}",
            "weights touched per set": " / ".join(touched[t] for t in targets) if summaries else DASH,
            "evaluation": evaluation_text(run, result),
            **({"grew/shrank/unchanged per set": " · ".join(counts)} if set(counts) != {DASH} else {}),
        })
    frame = pd.DataFrame(rows)
    if "grew/shrank/unchanged per set" in frame:
        frame["grew/shrank/unchanged per set"] = frame["grew/shrank/unchanged per set"].fillna(DASH)
    return frame


# --- ΔPPL by condition -----------------------------------------------------------------------------------


def _mean_sd(mean: Any, sd: Any) -> str:
    m, s = as_number(mean), as_number(sd)
    if m is None or math.isnan(m):
        return DASH
    text = fmt(m) if s is None or math.isnan(s) else f"{fmt(m)} ± {fmt(s)}"
    return text.replace("-", "−")  # a true minus: a hyphen lets the browser break the number


def conditions_frame(summary: pd.DataFrame, runs: Sequence[Any]) -> pd.DataFrame:
    """One row per run, level and target of ``charts_phase3.condition_summary``, as display strings."""
    by_id = {run.id: run for run in runs}
    rows = []
    for r in summary.itertuples(index=False):
        run = by_id.get(r.run)
        levelled = run is not None and run.perturbation in LEVELLED
        rows.append({
            "run": r.run,
            "perturbation": describe(run, r.level) if run is not None else DASH,
            "level": fmt(r.level) if levelled else DASH,
            "target": r.target,
            "weights touched": fmt(r.n_touched) if r.n_touched is not None and r.n_touched == r.n_touched else DASH,
            "ΔPPL (mean ± sd)": "diverged" if r.status == "diverged" else _mean_sd(r.mean, r.sd),
            "95% CI (documents)": (f"[{_mean_sd(r.ci_low, None)}, {_mean_sd(r.ci_high, None)}]"
                                   if getattr(r, "ci_kind", "") == "documents" else DASH),
            "diverged": f"{r.n_diverged}/{r.n_seeds}",
        })
    return pd.DataFrame(rows)


def _order_text(means: Mapping[str, float]) -> str:
    """The means in the hypothesis' order with the sign each adjacent pair actually has, e.g.
    'super -0.001 < random_k -0.0006 < bottom_k -0.0001': a fixed ' > ' would state a false chain."""
    order = [t for t in dict.fromkeys((*TARGETS, *ALL_TARGETS, *means)) if t in means]
    text = f"{order[0]} {fmt(means[order[0]])}" if order else ""
    for a, b in zip(order, order[1:]):
        x, y = means[a], means[b]
        sign = ">" if x > y else "<" if x < y else "=" if x == y else "vs"  # "vs": a NaN compares neither way
        text += f" {sign} {b} {fmt(y)}"
    return text


def _steps_by_ci(result: Mapping[str, Any], level: float, means: Mapping[str, float]) -> tuple[str, str] | None:
    """('holds' | 'reversed' | 'noise', the steps concerned) from the per-seed CIs of each hierarchy step, as the
    criterion grades it; None without them."""
    order = [t for t in TARGETS if t in means]
    steps = list(zip(order, order[1:])) + ([("super", "random_matched")] if "random_matched" in means else [])
    cis = [(f"{t['a']} > {t['b']}", as_number(t["diff"].get("ci_low")), as_number(t["diff"].get("ci_high")))
           for t in result.get("tests") or [] if "diff" in t and as_number(t["level"]) == level
           and (t["a"], t["b"]) in steps]
    if not cis:
        return None
    reversed_ = list(dict.fromkeys(s for s, _, hi in cis if hi is not None and hi < 0))
    unclear = list(dict.fromkeys(s for s, lo, _ in cis if lo is None or not lo > 0))
    if reversed_:
        return "reversed", f"{_join(reversed_)} reversed (CI below 0) in some seed"
    return ("noise", f"{_join(unclear)}: CI straddles 0") if unclear else ("holds", "")


def hierarchy_sentences(summary: pd.DataFrame, runs: Sequence[Any], levels: Mapping[str, float],
                        analysis: Mapping[str, Any] | None = None) -> list[str]:
    """Whether ΔPPL orders super > random_k > bottom_k, per run at ``levels[run]`` (e.g. its first): by the
    per-seed CIs of each step when ``analysis`` has them, else by the mean over seeds."""
    by_id = {run.id: run for run in runs}
    holds, fails, unknown, noise = [], [], [], []
    for run_id, level in levels.items():
        at = summary[(summary["run"] == run_id) & (summary["level"] == level)]
        if at.empty:
            continue
        several = len(levels_of(by_id[run_id])) > 1 if run_id in by_id else False
        name = f"`{run_id}`" + (f" (level {fmt(level)})" if several else "")
        if (at["status"] != "ok").any():
            unknown.append(f"{name} (diverged)")
            continue
        means = {t: float(m) for t, m in zip(at["target"], at["mean"])}
        order = [t for t in TARGETS if t in means]
        by_ci = _steps_by_ci((((analysis or {}).get("runs") or {}).get(run_id) or {}), level, means)
        if len(order) < 2:
            unknown.append(f"{name} (no control)")
        elif by_ci is not None:
            verdict, steps = by_ci
            {"holds": holds, "noise": noise}.get(verdict, fails).append(
                name if verdict == "holds" else f"{name}: {steps} (mean ΔPPL {_order_text(means)})")
        elif all(means[a] > means[b] for a, b in zip(order, order[1:])):
            holds.append(name)
        else:
            fails.append(f"{name}: {_order_text(means)}")
    out = []
    how = "every step's CI above 0 in every seed" if analysis else "mean ΔPPL over seeds"
    if holds:
        out.append(f"**The hierarchy super > random_k > bottom_k holds** ({how}) for {_join(holds)}.")
    if fails:
        out.append("**It does not hold** for " + "; ".join(fails) + ".")
    if noise:
        out.append("Some step is **indistinguishable at noise level** for " + "; ".join(noise) + ".")
    if unknown:
        out.append("It cannot be judged for " + _join(unknown) + ".")
    return out


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- Statistics ------------------------------------------------------------------------------------------

def divergence_notes(rows: pd.DataFrame, runs: Sequence[Any]) -> list[str]:
    """Plain sentences on diverged conditions: every set of a run at a level, or some seeds of one target."""
    notes = []
    for run in runs:
        mine = rows[rows["run"] == run.id]
        for level, at in mine.groupby("level", sort=True):
            bad = at[at["status"] != "ok"]
            if bad.empty:
                continue
            what = describe(run, level)
            if len(bad) == len(at):
                windows = f"{_span(at['n_nonfinite_windows'])} of {_span(at['n_windows'])} windows" \
                    if "n_nonfinite_windows" in at else "some windows"
                if run.perturbation == "bit_flip" and str(run.bit) == "exponent_msb":
                    factor = EXPONENT_MSB_FACTOR.get(str(run.dtype), "a huge power of two")
                    notes.append(f"Every set diverged under the exponent-MSB flip: the flip multiplies a weight "
                                 f"below 2 in magnitude by {factor} (run `{run.id}`, {run.dtype}; non-finite NLL "
                                 f"on {windows} per condition).")
                else:
                    notes.append(f"Every set diverged under {what} (run `{run.id}`; non-finite NLL on {windows} "
                                 "per condition).")
                continue
            for target, part in bad.groupby("target", sort=False):
                n = int((at["target"] == target).sum())
                notes.append(f"`{run.id}` ({what}): {target} diverged in "
                             + (f"every seed ({n})." if len(part) == n else
                                f"{len(part)} of {n} seeds; its mean ΔPPL uses the others."))
    return notes


# --- Dose-response -------------------------------------------------------------------------------------------


def dose_table(analysis: Mapping[str, Any] | None, runs: Sequence[Any]) -> pd.DataFrame:
    """Spearman ρ of mean ΔPPL against level per dose run and target, from the grade stage's analysis."""
    rows = []
    for run in runs:
        dose = (((analysis or {}).get("runs") or {}).get(run.id) or {}).get("dose") or {}
        for target in [t for t in ALL_TARGETS if t in dose]:
            d = dose[target]
            drops = ", ".join(f"{fmt(a)} → {fmt(b)}" for a, b in d.get("violations") or [])
            rows.append({
                "run": run.id, "target": target, "levels": len(d.get("levels") or []),
                "ρ (level means)": as_number(d.get("rho")),
                "ρ 95% CI": f"[{fmt(d.get('rho_ci_low'))}, {fmt(d.get('rho_ci_high'))}]",
                "levels ≠ 0": as_number(d.get("n_distinguishable")), "p": as_number(d.get("p")),
                "monotonic": "yes" if d.get("monotonic") else "no",
                "drops": drops or DASH,
                "ρ (every seed)": as_number(d.get("rho_points")),
                "status": d.get("status", DASH) + (f": {d['reason']}" if d.get("reason") else ""),
            })
    return pd.DataFrame(rows)


# --- Repeatability -------------------------------------------------------------------------------------------


def repeat_pairs(spec: Any) -> list[tuple[str, str]]:
    return [(c.run, c.repeat) for c in getattr(spec, "criteria", []) if getattr(c, "kind", None) == "repeatability"]


def repeat_frame(rows: pd.DataFrame, run: str, repeat: str) -> pd.DataFrame:
    """ΔPPL of each condition (seed, level, target) in both runs; diverged in both counts as equal."""
    keys = ["seed", "level", "target"]
    a = rows[rows["run"] == run][keys + ["delta_ppl"]]
    b = rows[rows["run"] == repeat][keys + ["delta_ppl"]]
    both = a.merge(b, on=keys, suffixes=(" " + run, " " + repeat))
    x, y = both[f"delta_ppl {run}"], both[f"delta_ppl {repeat}"]
    both["|difference|"] = (x - y).abs().where(~((x == y) & ~x.apply(math.isfinite)), 0.0)
    if both["level"].nunique() <= 1:  # a single level says nothing here
        both = both.drop(columns="level")
    return both.rename(columns={f"delta_ppl {run}": f"ΔPPL {run}", f"delta_ppl {repeat}": f"ΔPPL {repeat}"})


def repeat_sentence(frame: pd.DataFrame, run: str, repeat: str, pair: Mapping[str, Any] | None = None) -> str:
    """Identical results, or (with the grade stage's ``pair``) where each run read its windows and the relative
    difference of ΔPPL(super) with its CI, or the largest difference against the seed-to-seed spread."""
    if frame.empty:
        return f"`{run}` and `{repeat}` share no condition yet."
    diff = frame["|difference|"]
    if (diff == 0).all():
        return (f"`{run}` and `{repeat}` gave identical ΔPPL in all {len(frame)} shared conditions "
                "(seed × level × target).")
    rep = ((pair or {}).get("repeatability") or {}).get("super")
    if rep and not (pair or {}).get("shared_windows"):
        folds, docs = pair.get("eval_fold") or ["?", "?"], pair.get("n_docs") or ["?", "?"]
        return (f"`{run}` (fold {folds[0]}, {fmt(docs[0])} documents) and `{repeat}` (fold {folds[1]}, "
                f"{fmt(docs[1])} documents) read disjoint text: |ΔPPL_a − ΔPPL_b| / mean for the super set is "
                f"{fmt(rep.get('value'))} [{fmt(rep.get('ci_low'))}, {fmt(rep.get('ci_high'))}] (mean over "
                f"{len(rep.get('seeds') or [])} seeds, 95% CI from resampling each run's documents).")
    supers = _finite(frame.loc[frame["target"] == "super", f"ΔPPL {run}"])
    sd = statistics.stdev(supers) if len(supers) > 1 else math.nan
    return (f"`{run}` and `{repeat}`: largest |ΔPPL difference| {fmt(diff.max())} over {len(frame)} shared "
            f"conditions, against a seed-to-seed sd of ΔPPL(super) of {fmt(sd)}.")


# --- How this was measured -----------------------------------------------------------------------------------


def baseline_sentences(runs: Sequence[Any], analysis: Mapping[str, Any] | None, rows: pd.DataFrame) -> list[str]:
    """One line per shared baseline: its file, PPL, windows and the runs that read it."""
    found: dict[str, list[str]] = {}
    for run in runs:
        found.setdefault(run.baseline_dir(), []).append(run.id)
    out = []
    for where, ids in found.items():
        result = next((((analysis or {}).get("runs") or {}).get(r) for r in ids
                       if "baseline_ppl" in (((analysis or {}).get("runs") or {}).get(r) or {})), None)
        windows = rows.loc[rows["run"].isin(ids), "n_windows"] if "n_windows" in rows else pd.Series(dtype=float)
        ppl = f"PPL {fmt(result['baseline_ppl'], 4)}" if result else "not evaluated yet"
        docs = f" from {fmt(result['n_docs'])} documents" if result and result.get("clustered") else ""
        n = f" on {_span(windows)} windows{docs}" if len(windows) else ""
        out.append(f"`{where}/sequences.parquet`: {ppl}{n}; read by {_join([f'`{r}`' for r in ids])}.")
    return out
