"""Phase-5 pruning analysis: held-out PPL of every (arm, group, sparsity) and the ratios its criteria grade.

Every condition of a seed is evaluated on the shared baseline's windows, so one cluster bootstrap of the
evaluation documents per seed (esa.analysis.paired) serves every condition: each PPL's CI and each ratio's are
taken on the same document draws (paired). Written for the page (pruning.parquet) and read by the graders
(analysis.json: ``runs.<id>``, one entry per prune_advantage criterion under ``prune_ratios``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from esa.analysis.paired import align, cluster_boot, percentile_ci
from esa.grading.perturb_analysis import load_run_tables
from esa.spec import Spec
from esa.spec.prune_runs import DENSE

N_BOOT = 2000
KEY = ["arm", "group", "sparsity"]


def _label(arm: str, group: str, sparsity: float) -> str:
    return f"{arm}|{group}|{sparsity:g}"


def _achieved(spec: Spec, run, root: Path, seed: int) -> pd.DataFrame | None:
    path = root / f"results/{spec.name}/{run.id}/seed{seed}/sparsity.parquet"
    if not path.exists():
        return None
    table = pd.read_parquet(path)
    return table.groupby(KEY, as_index=False).agg(zeros=("zeros", "sum"), n=("n", "sum"),
                                                  min_matrix=("fraction", "min"), max_matrix=("fraction", "max"))


class SeedDraws:
    """One seed's conditions aligned with the baseline, and their PPL on the same document resamples."""

    def __init__(self, baseline: pd.DataFrame, frame: pd.DataFrame, seed: int, n_boot: int):
        groups = {_label(*key): table for key, table in frame.groupby(KEY, sort=False)}
        self.al = align(baseline, groups)
        self.boot = cluster_boot(self.al, n_boot, seed)
        self._draws: dict[str, np.ndarray] = {}

    def point(self, label: str) -> float:
        nll = self.al.nll["baseline" if label == DENSE else label]
        if not np.isfinite(nll).all():
            return math.inf
        return float(np.exp(nll.sum() / self.al.tokens.sum()))

    def draws(self, label: str) -> np.ndarray:
        name = "baseline" if label == DENSE else label
        if name not in self._draws:
            self._draws[name] = self.boot.ppl(self.al.nll[name])
        return self._draws[name]

    def has(self, label: str) -> bool:
        return label == DENSE or label in self.al.nll


def _curve_rows(run, seed: int, draws: SeedDraws, frame: pd.DataFrame, achieved: pd.DataFrame | None) -> list[dict]:
    rows = []
    dense = draws.point(DENSE)
    for (arm, group, sparsity), table in frame.groupby(KEY, sort=False):
        label = _label(arm, group, sparsity)
        p = draws.point(label)
        lo, hi = percentile_ci(draws.draws(label))
        row = {"run": run.id, "seed": seed, "arm": arm, "method": table["method"].iloc[0],
               "protected": bool(table["protected"].iloc[0]), "group": group, "sparsity": float(sparsity),
               "ppl": p, "ci_low": lo, "ci_high": hi, "dense_ppl": dense, "ppl_factor": p / dense,
               "status": "diverged" if not math.isfinite(p) else "ok", "n_docs": draws.al.n_docs,
               "n_windows": len(draws.al.tokens)}
        if achieved is not None:
            match = achieved[(achieved["arm"] == arm) & (achieved["group"] == group)
                             & (achieved["sparsity"] == sparsity)]
            if len(match):
                m = match.iloc[0]
                row.update(achieved=float(m["zeros"] / m["n"]), min_matrix=float(m["min_matrix"]),
                           max_matrix=float(m["max_matrix"]))
        rows.append(row)
    return rows


def ratio_entry(draws: SeedDraws, a: str, b: str, seed: int) -> dict:
    """PPL(a) / PPL(b) on one seed's windows with a paired cluster-bootstrap CI; diverged sides have no ratio."""
    pa, pb = draws.point(a), draws.point(b)
    if not (math.isfinite(pa) and math.isfinite(pb)):
        return {"seed": seed, "status": "diverged", "ratio": None, "ci_low": None, "ci_high": None,
                "ppl_a": pa if math.isfinite(pa) else None, "ppl_b": pb if math.isfinite(pb) else None}
    lo, hi = percentile_ci(draws.draws(a) / draws.draws(b))
    return {"seed": seed, "status": "ok", "ratio": pa / pb, "ci_low": lo, "ci_high": hi, "ppl_a": pa, "ppl_b": pb,
            "n_docs": draws.al.n_docs}


def analyze_prune_run(spec: Spec, run, root: Path, n_boot: int = N_BOOT) -> tuple[dict, list[dict]]:
    baseline, frames, missing = load_run_tables(spec, run, root)
    if missing:
        return {"missing": missing}, []
    rows, ratios = [], {}
    criteria = [c for c in spec.criteria if c.kind == "prune_advantage" and c.run == run.id]
    for seed in run.seeds:
        draws = SeedDraws(baseline, frames[seed], seed, n_boot)
        rows.extend(_curve_rows(run, seed, draws, frames[seed], _achieved(spec, run, root, seed)))
        for criterion in criteria:
            a, b = (x if x == DENSE else _label(x, criterion.group, criterion.sparsity)
                    for x in (criterion.a, criterion.b))
            entry = ({"seed": seed, "status": "missing", "reason": f"no condition {a if not draws.has(a) else b}"}
                     if not (draws.has(a) and draws.has(b)) else ratio_entry(draws, a, b, seed))
            ratios.setdefault(criterion.id, []).append(entry)
    n_docs = rows[0]["n_docs"] if rows else 0
    return {"n_docs": n_docs, "n_windows": rows[0]["n_windows"] if rows else 0, "prune_ratios": ratios,
            "n_boot": n_boot}, rows


def analyze_prune_runs(spec: Spec, root: Path) -> dict:
    runs, rows = {}, []
    for run in spec.runs:
        if run.kind != "prune":
            continue
        runs[run.id], run_rows = analyze_prune_run(spec, run, root)
        rows.extend(run_rows)
    out = root / "results" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(out / "pruning.parquet", index=False)
    return {"runs": runs}
