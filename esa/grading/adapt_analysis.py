"""Phase-5 adaptation analysis: forgetting and gain of every training arm, with paired cluster-bootstrap CIs.

Forgetting pairs each arm's evaluation windows with the shared baseline's (the untrained model); gain pairs each
arm's held-out instruction pairs with the untrained model's ("before"). Both are differences of token-weighted
mean NLL (nats per token). One document resample per seed and table serves every arm, so differences between
arms are paired too. Written for the page (adaptation.parquet, adaptation_curves.parquet) and read by the
graders (analysis.json: ``runs.<id>.adapt_differences``, one entry per adapt_difference criterion).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from esa.analysis.paired import align, cluster_boot, percentile_ci
from esa.spec import Spec

N_BOOT = 2000


class MeasureDraws:
    """Per arm, a measure's point value and its values on shared document resamples.

    ``sign`` +1: after − before (forgetting); −1: before − after (gain)."""

    def __init__(self, before: pd.DataFrame, after: pd.DataFrame, seed: int, sign: int, n_boot: int):
        tables = {arm: t for arm, t in after.groupby("arm", sort=False)}
        self.al = align(before, tables)
        boot = cluster_boot(self.al, n_boot, seed)
        tokens = self.al.tokens.sum()

        def mean_nll(nll):  # token-weighted, on the full data and on each resample
            return nll.sum() / tokens, np.log(boot.ppl(nll))

        base, base_draws = mean_nll(self.al.nll["baseline"])
        self.point, self.draws = {}, {}
        for arm in tables:
            value, draws = mean_nll(self.al.nll[arm])
            self.point[arm], self.draws[arm] = sign * (value - base), sign * (draws - base_draws)
        self.ppl_before = math.exp(base)
        self.ppl_after = {arm: math.exp(self.al.nll[arm].sum() / tokens) for arm in tables}

    def ci(self, arm: str) -> tuple[float, float]:
        return percentile_ci(self.draws[arm])

    def difference(self, a: str, b: str) -> dict:
        value = self.point[a] - self.point[b]
        if not math.isfinite(value):
            return {"status": "diverged", "value": None, "ci_low": None, "ci_high": None}
        lo, hi = percentile_ci(self.draws[a] - self.draws[b])
        return {"status": "ok", "value": value, "ci_low": lo, "ci_high": hi, "a_value": self.point[a],
                "b_value": self.point[b]}


def _seed_files(root: Path, spec: Spec, run, seed: int) -> dict[str, Path]:
    folder = root / f"results/{spec.name}/{run.id}/seed{seed}"
    return {name: folder / f"{name}.{ext}" for name, ext in
            (("conditions", "parquet"), ("domain", "parquet"), ("summary", "json"))}


def analyze_adapt_run(spec: Spec, run, root: Path, n_boot: int = N_BOOT) -> tuple[dict, list[dict], list[dict]]:
    base_path = root / run.baseline_dir() / "sequences.parquet"
    files = {seed: _seed_files(root, spec, run, seed) for seed in run.seeds}
    missing = [str(p.relative_to(root)) for p in [base_path, *(f for fs in files.values() for f in fs.values())]
               if not p.exists()]
    if missing:
        return {"missing": missing}, [], []
    baseline = pd.read_parquet(base_path)
    rows, curves, differences = [], [], {}
    criteria = [c for c in spec.criteria if c.kind == "adapt_difference" and c.run == run.id]
    info = {}
    for seed, paths in files.items():
        domain = pd.read_parquet(paths["domain"])
        measures = {
            "forgetting": MeasureDraws(baseline, pd.read_parquet(paths["conditions"]), seed, +1, n_boot),
            "gain": MeasureDraws(domain[domain["arm"] == "before"], domain[domain["arm"] != "before"], seed, -1,
                                 n_boot)}
        summary = {a["arm"]: a for a in json.loads(paths["summary"].read_text())["arms"]}
        for arm, entry in summary.items():
            forget, gain = measures["forgetting"], measures["gain"]
            (f_lo, f_hi), (g_lo, g_hi) = forget.ci(arm), gain.ci(arm)
            rows.append({"run": run.id, "seed": seed, "arm": arm, "n_trainable": entry["n_trainable"],
                         "steps": entry["steps"], "forgetting": forget.point[arm], "forgetting_ci_low": f_lo,
                         "forgetting_ci_high": f_hi, "gain": gain.point[arm], "gain_ci_low": g_lo,
                         "gain_ci_high": g_hi, "gain_per_param": gain.point[arm] / entry["n_trainable"],
                         "ppl_before": forget.ppl_before, "ppl_after": forget.ppl_after[arm],
                         "new_ppl_before": gain.ppl_before, "new_ppl_after": gain.ppl_after[arm],
                         "wall_time_s": entry["wall_time_s"], "final_train_loss": entry["final_train_loss"]})
            curves.extend({"run": run.id, "seed": seed, "arm": arm, "step": p["step"], "loss": p["loss"]}
                          for p in entry["loss_curve"])
        for criterion in criteria:
            draws = measures[criterion.measure]
            entry = draws.difference(criterion.a, criterion.b) if {criterion.a, criterion.b} <= set(draws.point) \
                else {"status": "missing", "reason": f"seed {seed} has no arm {criterion.a} or {criterion.b}"}
            differences.setdefault(criterion.id, []).append({"seed": seed, **entry})
        info = {"n_docs": measures["forgetting"].al.n_docs, "n_windows": len(measures["forgetting"].al.tokens),
                "n_pair_docs": measures["gain"].al.n_docs, "n_pairs": len(measures["gain"].al.tokens)}
    return {**info, "n_boot": n_boot, "adapt_differences": differences}, rows, curves


def analyze_adapt_runs(spec: Spec, root: Path) -> dict:
    runs, rows, curves = {}, [], []
    for run in spec.runs:
        if run.kind != "adapt":
            continue
        runs[run.id], run_rows, run_curves = analyze_adapt_run(spec, run, root)
        rows.extend(run_rows)
        curves.extend(run_curves)
    out = root / "results" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(out / "adaptation.parquet", index=False)
    pd.DataFrame(curves).to_parquet(out / "adaptation_curves.parquet", index=False)
    return {"runs": runs}
