"""Phase-3 analyses: paired statistics of every perturbation condition against the shared baseline.

Unit of analysis: the evaluation window (each condition is evaluated on the baseline's windows). Computed once by
the grade stage, written for the report (analysis.json, conditions.parquet), read by the graders.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from esa.analysis.dose_response import dose_response
from esa.analysis.paired import compare_paired, delta_ppl, delta_table, holm, ppl, ratio_ci
from esa.analysis.power import power_of
from esa.spec import Spec
from esa.stageio import write_json

TARGETS = ("super", "random_k", "bottom_k")
COMPARISONS = (("super", "random_k"), ("super", "bottom_k"), ("random_k", "bottom_k"))


def _finite_or_inf(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def analyze_seed(base: pd.DataFrame, conditions: pd.DataFrame, seed: int) -> tuple[list[dict], list[dict]]:
    """Per level: each target's ΔPPL and status, ratios with CIs, and paired tests with power."""
    rows, tests = [], []
    for level, at_level in conditions.groupby("level", sort=True):
        tables = {t: at_level[at_level["target"] == t] for t in TARGETS if (at_level["target"] == t).any()}
        for target, table in tables.items():
            diverged = not np.isfinite(table["nll_sum"]).all()
            rows.append({"seed": seed, "level": float(level), "target": target,
                         "ppl": math.inf if diverged else ppl(table),
                         "delta_ppl": math.inf if diverged else delta_ppl(base, table),
                         "status": "diverged" if diverged else "ok",
                         "n_windows": len(table), "n_nonfinite_windows": int((~np.isfinite(table["nll_sum"])).sum()),
                         "n_touched": int(table["n_touched"].iloc[0]) if "n_touched" in table else None})
        for a, b in COMPARISONS:
            if a not in tables or b not in tables:
                continue
            ratio = ratio_ci(base, tables[a], tables[b], seed=seed)
            test = compare_paired(delta_table(base, tables[a]), delta_table(base, tables[b]))
            tests.append({"seed": seed, "level": float(level), "a": a, "b": b, "ratio": ratio.as_dict(),
                          "test": test.as_dict(), "power": power_of(test).as_dict()})
    return rows, tests


def analyze_run(spec: Spec, run, root: Path) -> dict:
    base_path = root / run.baseline_dir() / "sequences.parquet"
    missing = [str(base_path.relative_to(root))] if not base_path.exists() else []
    frames = {}
    for seed in run.seeds:
        path = root / f"results/{spec.name}/{run.id}/seed{seed}/conditions.parquet"
        if path.exists():
            frames[seed] = pd.read_parquet(path)
        else:
            missing.append(str(path.relative_to(root)))
    if missing:
        return {"missing": missing}
    base = pd.read_parquet(base_path)
    rows, tests = [], []
    for seed, frame in frames.items():
        r, t = analyze_seed(base, frame, seed)
        rows += r
        tests += t
    table = pd.DataFrame(rows)
    means = (table.groupby(["level", "target"])["delta_ppl"].agg(lambda v: float(np.mean(v)))
             .unstack("target").to_dict(orient="index"))
    result = {"levels": sorted(set(table["level"])), "baseline_ppl": ppl(base), "rows": rows, "tests": tests,
              "mean_delta_ppl": {str(level): values for level, values in means.items()},
              "perturbation": run.perturbation, "seeds": list(run.seeds)}
    if len(result["levels"]) > 1:
        result["dose"] = {}
        for target in TARGETS:
            per_level = [[_finite_or_inf(r["delta_ppl"]) for r in rows if r["level"] == lv and r["target"] == target]
                         for lv in result["levels"]]
            if all(per_level):
                result["dose"][target] = dose_response(result["levels"], per_level).as_dict()
    return result


def analyze_phase3(spec: Spec, root: Path) -> dict:
    analysis: dict = {"runs": {}}
    for run in spec.runs:
        if run.kind == "perturb":
            analysis["runs"][run.id] = analyze_run(spec, run, root)
    # Holm across every super-vs-control comparison of the phase (the family the significance criteria read).
    family = {f"{run_id}|{t['seed']}|{t['level']}|{t['a']}>{t['b']}": t["test"]["wilcoxon_p"]
              for run_id, result in analysis["runs"].items() for t in result.get("tests", [])}
    corrected = holm(family, alpha=0.01)
    analysis["holm"] = corrected.as_dict()
    for run_id, result in analysis["runs"].items():
        for t in result.get("tests", []):
            t["wilcoxon_p_holm"] = corrected.adjusted.get(f"{run_id}|{t['seed']}|{t['level']}|{t['a']}>{t['b']}")
    out = root / "results" / spec.name
    write_json(out / "analysis.json", analysis)
    rows = [{"run": run_id, **row} for run_id, result in analysis["runs"].items() for row in result.get("rows", [])]
    pd.DataFrame(rows).to_parquet(out / "conditions.parquet", index=False)
    return analysis
