"""Phase-5 fault analysis: collapse rates per (format, rate, arm) with their CIs, and flips to collapse per attack
arm and seed.

Trials are independent draws, so a collapse rate is a binomial proportion over all seeds' trials (Wilson score CI,
statsmodels). Written for the page (faults.parquet: one row per trial; attacks.parquet: one row per flip) and read
by the graders (analysis.json: ``runs.<id>`` with ``collapse`` and ``attacks``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from esa.spec import Spec

ALPHA = 0.05


def _seed_tables(spec: Spec, run, root: Path, name: str) -> tuple[list[pd.DataFrame], list[str]]:
    tables, missing = [], []
    for seed in run.seeds:
        rel = f"results/{spec.name}/{run.id}/seed{seed}/{name}"
        if (root / rel).exists():
            tables.append(pd.read_parquet(root / rel).assign(run=run.id))
        else:
            missing.append(rel)
    return tables, missing


def collapse_table(trials: pd.DataFrame) -> list[dict]:
    """Per (format, rate, arm): collapses, trials, the rate with its Wilson CI, and the PPL quartiles."""
    rows = []
    for (fmt, rate, arm), group in trials.groupby(["format", "rate", "arm"], sort=True):
        n, k = len(group), int(group["collapsed"].sum())
        lo, hi = proportion_confint(k, n, alpha=ALPHA, method="wilson")
        ppl = group["ppl"].replace(math.inf, math.nan)
        rows.append({"format": fmt, "rate": float(rate), "arm": arm, "collapsed": k, "trials": n,
                     "collapse_rate": k / n, "ci_low": float(lo), "ci_high": float(hi),
                     "mean_flips": float(group["n_flips"].mean()),
                     "diverged": int((group["status"] == "diverged").sum()),
                     "ppl_median": float(ppl.median()) if ppl.notna().any() else None})
    return rows


def attack_table(attacks: pd.DataFrame) -> list[dict]:
    """Per (format, arm, seed): flips to the first collapse, or None with ``censored`` when the budget ran out."""
    rows = []
    for (fmt, arm, seed), group in attacks.groupby(["format", "arm", "seed"], sort=True):
        hit = group[group["collapsed"]]
        first = int(hit["step"].min()) if len(hit) else None
        rows.append({"format": fmt, "arm": arm, "seed": int(seed), "flips_to_collapse": first,
                     "censored": first is None, "budget": int(group["budget"].iloc[0]),
                     "flips": int(group["step"].max()), "final_ppl": float(group["ppl"].iloc[-1])})
    return rows


def _baselines(spec: Spec, run, root: Path) -> dict[str, float]:
    """Each storage format's baseline PPL, the mean over seeds' summaries (the windows are the same)."""
    found: dict[str, list[float]] = {}
    for seed in run.seeds:
        path = root / f"results/{spec.name}/{run.id}/seed{seed}/summary.json"
        if path.exists():
            for fmt, value in json.loads(path.read_text()).get("baseline_ppl", {}).items():
                found.setdefault(fmt, []).append(float(value))
    return {fmt: sum(values) / len(values) for fmt, values in found.items()}


def analyze_fault_runs(spec: Spec, root: Path) -> dict:
    runs, all_trials, all_attacks = {}, [], []
    for run in spec.runs:
        if run.kind != "faults":
            continue
        trials, missing = _seed_tables(spec, run, root, "trials.parquet")
        attacks, missing_attacks = _seed_tables(spec, run, root, "attack.parquet") if run.attack else ([], [])
        if missing or missing_attacks:
            runs[run.id] = {"missing": missing + missing_attacks}
            continue
        frame = pd.concat(trials, ignore_index=True)
        all_trials.append(frame)
        entry = {"collapse": collapse_table(frame), "n_trials": len(frame), "seeds": list(run.seeds),
                 "baseline_ppl": _baselines(spec, run, root)}
        if attacks:
            steps = pd.concat(attacks, ignore_index=True)
            all_attacks.append(steps)
            entry["attacks"] = attack_table(steps)
        runs[run.id] = entry
    out = root / "results" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    (pd.concat(all_trials, ignore_index=True) if all_trials else pd.DataFrame()).to_parquet(
        out / "faults.parquet", index=False)
    (pd.concat(all_attacks, ignore_index=True) if all_attacks else pd.DataFrame()).to_parquet(
        out / "attacks.parquet", index=False)
    return {"runs": runs}
