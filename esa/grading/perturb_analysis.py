"""Phase-3 analyses: paired statistics of every perturbation condition against the shared baseline.

Unit of analysis: the evaluation document. Every condition of a run is evaluated on the baseline's windows, so one
cluster bootstrap of the run's documents serves every seed, level and target (ratios, differences, PPL factors,
mean effects, dose-response ρ), and paired tests run on per-document ΔNLL. Computed once by the grade stage,
written for the report (analysis.json, conditions.parquet), read by the graders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from esa.analysis.dose_response import dose_response
from esa.analysis.paired import (NO_DOCS, Aligned, PairedTest, align, boot_method, cluster_boot,
                                 compare_paired, content_key, diff_from, holm, percentile_ci, ppl, ratio_from)
from esa.analysis.power import power_of
from esa.grading.effect_difference_analysis import analyze_effect_difference
from esa.grading.holm_families import DEFAULT_ALPHA, holm_families
from esa.grading.perturb_data import RunData, boot_seed, condition_name as _name, delta_frame
from esa.names import TARGETS
from esa.spec import Spec

COMPARISONS = (("super", "random_k"), ("super", "random_matched"), ("super", "bottom_k"), ("random_k", "bottom_k"))
COUNT_COLUMNS = ("n_grew", "n_shrank", "n_unchanged")
N_BOOT = 2000
PAIR_KINDS = ("repeatability", "determinism")


def _first(table: pd.DataFrame, column: str) -> int | None:
    return int(table[column].iloc[0]) if column in table and table[column].notna().any() else None


def load_run_tables(spec: Spec, run, root: Path) -> tuple[pd.DataFrame | None, dict[int, pd.DataFrame], list[str]]:
    """The shared baseline's per-window table and each seed's conditions.parquet, and the files that are missing
    (the baseline is None then). Any run kind evaluated on the shared baseline writes its seeds' tables so."""
    base_path = root / run.baseline_dir() / "sequences.parquet"
    missing = [] if base_path.exists() else [str(base_path.relative_to(root))]
    frames = {}
    for seed in run.seeds:
        path = root / f"results/{spec.name}/{run.id}/seed{seed}/conditions.parquet"
        if path.exists():
            frames[seed] = pd.read_parquet(path)
        else:
            missing.append(str(path.relative_to(root)))
    return (None if missing else pd.read_parquet(base_path)), frames, missing


def _row(al: Aligned, data: RunData, key: tuple, table: pd.DataFrame, base: tuple[float, np.ndarray]) -> dict:
    seed, level, target = key
    nll = al.nll[_name(*key)]
    diverged = not np.isfinite(nll).all()
    resampled = data.boot.ppl(nll)  # the same document draws as the baseline's: a paired ΔPPL and PPL factor
    data.deltas[key] = resampled - base[1]
    lo, hi = percentile_ci(data.deltas[key])
    f_lo, f_hi = percentile_ci(resampled / base[1])
    p = math.inf if diverged else ppl(table)
    return {"seed": seed, "level": level, "target": target, "ppl": p, "delta_ppl": p - base[0],
            "delta_ci_low": lo, "delta_ci_high": hi, "ppl_factor": p / base[0], "factor_ci_low": f_lo,
            "factor_ci_high": f_hi, "status": "diverged" if diverged else "ok",
            "n_windows": len(table), "n_docs": al.n_docs, "n_nonfinite_windows": int((~np.isfinite(nll)).sum()),
            "n_touched": _first(table, "n_touched"), **{c: _first(table, c) for c in COUNT_COLUMNS if c in table}}


def _super_weights(spec: Spec, run, root: Path) -> list[dict]:
    """Per seed, the super weights its stage perturbed and their original values (its summary.json)."""
    out = []
    for seed in run.seeds:
        path = root / f"results/{spec.name}/{run.id}/seed{seed}/summary.json"
        summary = json.loads(path.read_text()) if path.exists() else {}
        if "super_weights" in summary:
            out.append({"seed": seed, "n_super": summary.get("n_super"), "weights": summary["super_weights"]})
    return out


def _effects(rows: list[dict], data: RunData, levels: list[float]) -> list[dict]:
    """Per level and target: mean ΔPPL over seeds, CI from the shared document resamples (mean over seeds)."""
    out = []
    for level in levels:
        for target in TARGETS:
            mine = [r for r in rows if r["level"] == level and r["target"] == target]
            if not mine:
                continue
            samples = np.mean([data.deltas[(r["seed"], level, target)] for r in mine], axis=0)
            lo, hi = percentile_ci(samples)
            n_bad = sum(r["status"] != "ok" for r in mine)
            out.append({"level": level, "target": target, "mean": float(np.mean([r["delta_ppl"] for r in mine])),
                        "ci_low": lo, "ci_high": hi, "n_seeds": len(mine), "n_diverged": n_bad,
                        "status": "ok" if not n_bad else "diverged"})
    return out


def analyze_run(spec: Spec, run, root: Path, n_boot: int = N_BOOT) -> tuple[dict, RunData | None]:
    base, frames, missing = load_run_tables(spec, run, root)
    if missing:
        return {"missing": missing}, None
    tables = {(seed, float(level), str(target)): t.reset_index(drop=True) for seed, frame in frames.items()
              for (level, target), t in frame.groupby(["level", "target"], sort=True)}
    al = align(base, {_name(*k): t for k, t in tables.items()})
    draws_seed = boot_seed(f"{spec.name}/{run.id}")
    data = RunData(al, cluster_boot(al, n_boot, draws_seed))
    base_point = (ppl(base), data.boot.ppl(al.nll["baseline"]))
    rows = [_row(al, data, key, t, base_point) for key, t in tables.items()]
    tests = []
    for seed, level in sorted({(s, lv) for s, lv, _ in tables}):
        for a, b in COMPARISONS:
            ka, kb = _name(seed, level, a), _name(seed, level, b)
            if ka not in al.nll or kb not in al.nll:
                continue
            test = compare_paired(delta_frame(al, ka), delta_frame(al, kb))
            tests.append({"seed": seed, "level": level, "a": a, "b": b,
                          "ratio": ratio_from(al, data.boot, ka, kb).as_dict(),
                          "diff": diff_from(al, data.boot, ka, kb).as_dict(), "test": test.as_dict(),
                          "test_key": content_key(al.nll["baseline"], al.nll[ka], al.nll[kb])})
    table = pd.DataFrame(rows)
    levels = sorted(set(table["level"]))
    means = (table.groupby(["level", "target"])["delta_ppl"].agg(lambda v: float(np.mean(v)))
             .unstack("target").to_dict(orient="index"))
    result = {"levels": levels, "baseline_ppl": ppl(base), "rows": rows, "tests": tests,
              "effects": _effects(rows, data, levels),
              "mean_delta_ppl": {str(level): values for level, values in means.items()},
              "perturbation": run.perturbation, "seeds": list(run.seeds), "n_docs": al.n_docs,
              "n_windows": len(al.tokens), "clustered": al.clustered, "unit": "document" if al.clustered else
              f"window ({NO_DOCS})", "baseline": f"{run.baseline_dir()}/sequences.parquet",
              "super_weights": _super_weights(spec, run, root), "eval_fold": getattr(run, "eval_fold", 0),
              "eval_folds": getattr(run, "eval_folds", 1),
              "bootstrap": {"n_boot": n_boot, "seed": draws_seed, "method": boot_method(al.clustered)}}
    if len(levels) > 1:
        result["dose"] = {}
        point = {(r["seed"], r["level"], r["target"]): r["delta_ppl"] for r in rows}
        for target in TARGETS:
            keys = [[(s, lv, target) for s in run.seeds if (s, lv, target) in point] for lv in levels]
            if all(keys):
                per_level = [[point[k] for k in ks] for ks in keys]
                boot = np.column_stack([np.mean([data.deltas[k] for k in ks], axis=0) for ks in keys])
                result["dose"][target] = dose_response(levels, per_level, boot=boot).as_dict()
    data.boot = None  # the resample counts are large; the pairs need only the resampled ΔPPL
    return result, data


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| / mean(a, b), +inf where the mean is ≤ 0 or a side diverged (no effect to repeat)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    mean = (a + b) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(a - b) / mean
    return np.where(np.isfinite(a) & np.isfinite(b) & (mean > 0), rel, np.inf)


def analyze_pair(first: dict, second: dict, a: RunData, b: RunData) -> dict:
    """Overlap of two runs' windows, the largest ΔPPL difference (determinism) and, per target at the first run's
    first level, the mean over shared seeds of |ΔPPL_a − ΔPPL_b| / mean with a CI from independent resamples."""
    ids_a, ids_b = set(a.al.ids), set(b.al.ids)
    docs = (len(set(a.al.doc_ids) & set(b.al.doc_ids)) if a.al.clustered and b.al.clustered
            else None)
    out = {"shared_windows": len(ids_a & ids_b), "shared_docs": docs, "same_windows": ids_a == ids_b,
           "n_windows": [len(ids_a), len(ids_b)], "n_docs": [a.al.n_docs, b.al.n_docs],
           "eval_fold": [first.get("eval_fold"), second.get("eval_fold")]}
    rows_a = {(r["seed"], r["level"], r["target"]): r["delta_ppl"] for r in first["rows"]}
    rows_b = {(r["seed"], r["level"], r["target"]): r["delta_ppl"] for r in second["rows"]}
    shared = sorted(set(rows_a) & set(rows_b))
    # Diverged in both runs is the same outcome; diverged in one only is the largest possible difference.
    diffs = [0.0 if rows_a[k] == rows_b[k] else abs(rows_a[k] - rows_b[k]) for k in shared]
    out["determinism"] = {"n_conditions": len(shared), "max_abs_diff": max(diffs) if diffs else None,
                          "worst": list(shared[int(np.argmax(diffs))]) if diffs else None}
    level = first["levels"][0]
    out["level"], out["repeatability"] = level, {}
    for target in TARGETS:
        seeds = sorted(s for s, lv, t in shared if lv == level and t == target)
        if not seeds:
            continue
        point = _relative([rows_a[(s, level, target)] for s in seeds], [rows_b[(s, level, target)] for s in seeds])
        samples = np.mean([_relative(a.deltas[(s, level, target)], b.deltas[(s, level, target)]) for s in seeds],
                          axis=0)
        lo, hi = percentile_ci(samples)
        bad = [s for s, v in zip(seeds, point) if not math.isfinite(v)]
        out["repeatability"][target] = {
            "value": float(np.mean(point)), "ci_low": lo, "ci_high": hi, "seeds": seeds,
            "per_seed": [float(v) for v in point], "delta_a": [rows_a[(s, level, target)] for s in seeds],
            "delta_b": [rows_b[(s, level, target)] for s in seeds],
            "reason": (f"seeds {bad}: a side diverged or the mean ΔPPL is ≤ 0 (no effect to repeat)" if bad
                       else "")}
    return out


def _holm(analysis: dict, alpha: float) -> None:
    """Holm over every distinct comparison of the phase, in both one-sided directions; identical tests (the same
    per-window NLL vectors, e.g. seeds sharing the super set and a deterministic control) enter once. Descriptive:
    the statistics table shows it; criteria read the families their spec declares (``holm_families``)."""
    tests = [t for result in analysis["runs"].values() for t in result.get("tests", [])]
    greater = {t["test_key"]: t["test"]["wilcoxon_p"] for t in tests}
    less = {t["test_key"]: t["test"]["wilcoxon_p_less"] for t in tests}
    hg, hl = holm(greater, alpha=alpha), holm(less, alpha=alpha)
    members: dict[str, list[str]] = {}
    for run_id, result in analysis["runs"].items():
        for t in result.get("tests", []):
            members.setdefault(t["test_key"], []).append(f"{run_id}|{t['seed']}|{t['level']}|{t['a']}>{t['b']}")
            t["wilcoxon_p_holm"] = hg.adjusted[t["test_key"]]
            t["wilcoxon_p_less_holm"] = hl.adjusted[t["test_key"]]
    analysis["holm"] = {**hg.as_dict(), "scope": "every comparison of the phase (descriptive)",
                        "n_comparisons": len(tests), "n_duplicates": len(tests) - len(greater), "members": members,
                        "less": {"adjusted": hl.adjusted, "reject": hl.reject}}


def analyze_perturb_runs(spec: Spec, root: Path, n_boot: int = N_BOOT) -> dict:
    """Every perturb run of the spec: its part of analysis.json (tests, repeat pairs, comparisons of two runs, the
    Holm families the criteria declare), and conditions.parquet (one row per run, seed, level and target)."""
    analysis: dict = {"runs": {}, "pairs": {}}
    data: dict[str, RunData] = {}
    for run in spec.runs:
        if run.kind == "perturb":
            analysis["runs"][run.id], found = analyze_run(spec, run, root, n_boot)
            if found is not None:
                data[run.id] = found
    for criterion in spec.criteria:
        if criterion.kind in PAIR_KINDS:
            pair = f"{criterion.run}|{criterion.repeat}"
            if criterion.run in data and criterion.repeat in data:
                analysis["pairs"][pair] = analyze_pair(analysis["runs"][criterion.run],
                                                       analysis["runs"][criterion.repeat],
                                                       data[criterion.run], data[criterion.repeat])
    analysis["effect_differences"] = {c.id: analyze_effect_difference(spec, c, analysis["runs"], data, n_boot)
                                      for c in spec.criteria if c.kind == "effect_difference"}
    alpha = min((c.threshold for c in spec.criteria if c.kind == "significance"), default=DEFAULT_ALPHA)
    _holm(analysis, alpha)
    analysis["families"] = holm_families(spec, analysis)
    m = analysis["holm"]["n_tests"]
    for result in analysis["runs"].values():
        for t in result.get("tests", []):
            t["power"] = power_of(PairedTest(**t["test"]), alpha=alpha, m_tests=m).as_dict()
    out = root / "results" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"run": run_id, **row} for run_id, result in analysis["runs"].items() for row in result.get("rows", [])]
    pd.DataFrame(rows).to_parquet(out / "conditions.parquet", index=False)
    return analysis
