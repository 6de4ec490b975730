"""Phase-5 interpretability analysis, per seed: what zeroing each super weight does to PPL and attention-sink mass
(windows resampled by document), the Spearman correlation of critical weights per head with each head's attention
(layers resampled as clusters), and what zeroing the critical set does to each probe category beyond matched
random ablations (items resampled).

Written for the page (superweights.parquet: the massive activation per layer; head_critical.parquet: heads;
probe_accuracy.parquet: accuracy per condition and category) and read by the graders (analysis.json:
``runs.<id>`` with ``superweights``, ``head_correlations`` and ``probe_drops``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from esa.analysis.paired import align, cluster_boot, percentile_ci
from esa.analysis.head_correlation import head_correlation
from esa.spec import Spec

N_BOOT = 2000
SEED_FILES = ("activations.parquet", "windows.parquet", "heads.parquet", "probes.parquet", "summary.json")
PAGE_CORRELATIONS = (("total", "entropy"), ("total", "sink_share"))


def _window_table(windows: pd.DataFrame, condition: str) -> pd.DataFrame:
    rows = windows[(windows["condition"] == condition) & (windows["layer"] == 0)]
    return rows[["window_id", "doc_id", "n_tokens", "nll_sum"]].reset_index(drop=True)


def _mean_sink(windows: pd.DataFrame, condition: str, layers: list[int], ids: pd.Index) -> np.ndarray:
    """Each window's sink mass averaged over ``layers``, in the order of ``ids``."""
    rows = windows[(windows["condition"] == condition) & windows["layer"].isin(layers)]
    return rows.groupby("window_id")["sink"].mean().reindex(ids).to_numpy(dtype=float)


def superweight_entries(windows: pd.DataFrame, summary: dict, seed: int, n_boot: int = N_BOOT) -> list[dict]:
    """Per super weight: PPL zeroed / baseline and the mean change of sink mass over the layers after the weight's,
    each with a 95% cluster-bootstrap CI (documents resampled; the same draws for both)."""
    base = _window_table(windows, "baseline")
    n_layers = int(windows["layer"].max()) + 1 if len(windows) else 0
    entries = []
    for sw in summary.get("superweights", []):
        zeroed = _window_table(windows, f"zeroed:{sw['weight']}")
        al = align(base, {"zeroed": zeroed})
        boot = cluster_boot(al, n_boot, seed)
        entry = {"seed": seed, **{k: sw[k] for k in ("weight", "layer", "param_name", "row", "col")},
                 "n_docs": al.n_docs, "n_windows": len(al.ids)}
        pb, pz = (float(np.exp(al.nll[k].sum() / al.tokens.sum())) for k in ("baseline", "zeroed"))
        if np.isfinite(al.nll["zeroed"]).all():
            lo, hi = percentile_ci(boot.ppl(al.nll["zeroed"]) / boot.ppl(al.nll["baseline"]))
            entry.update(ppl_baseline=pb, ppl_zeroed=pz, ppl_ratio=pz / pb, ppl_ci_low=lo, ppl_ci_high=hi,
                         ppl_status="ok")
        else:
            entry.update(ppl_baseline=pb, ppl_zeroed=math.inf, ppl_ratio=math.inf, ppl_ci_low=math.inf,
                         ppl_ci_high=math.inf, ppl_status="diverged")
        after = list(range(int(sw["layer"]) + 1, n_layers))
        if after:
            b, z = _mean_sink(windows, "baseline", after, al.ids), _mean_sink(windows, f"zeroed:{sw['weight']}",
                                                                                after, al.ids)
            delta = z - b
            draws = (boot.counts @ al.doc_sum(delta)) / (boot.counts @ al.doc_sum(np.ones_like(delta)))
            lo, hi = percentile_ci(draws)
            entry.update(sink_baseline=float(b.mean()), sink_zeroed=float(z.mean()),
                         sink_shift=float(delta.mean()), sink_ci_low=lo, sink_ci_high=hi, sink_layers=after)
        else:
            entry.update(sink_shift=None, sink_layers=[], reason="the super weight is in the last layer: no "
                                                                 "attention after it")
        entries.append(entry)
    return entries


def probe_drop_entries(probes: pd.DataFrame, seed: int, n_boot: int = N_BOOT) -> list[dict]:
    """Per category and measure (top-1 ``accuracy``, the answer's ``logprob``): the mean under matched random
    ablation (over draws) − the mean with the critical set zeroed, paired by item, with a 95% percentile bootstrap CI
    over items (independent prompts)."""
    rng = np.random.default_rng(seed)
    entries = []
    for category, rows in probes.groupby("category", sort=True):
        draws = None
        for measure, column in (("accuracy", "correct"), ("logprob", "logprob")):
            per_item = rows.pivot_table(index="item", columns="condition", values=column, aggfunc="mean")
            if not {"topk", "random", "baseline"} <= set(per_item.columns):
                break
            diff = (per_item["random"] - per_item["topk"]).to_numpy(dtype=float)
            if draws is None:  # the same item resamples for both measures
                draws = rng.integers(0, len(diff), size=(n_boot, len(diff)))
            lo, hi = percentile_ci(diff[draws].mean(axis=1))
            entries.append({"seed": seed, "category": category, "measure": measure, "n_items": len(diff),
                            "baseline": float(per_item["baseline"].mean()), "topk": float(per_item["topk"].mean()),
                            "random": float(per_item["random"].mean()), "drop": float(diff.mean()),
                            "ci_low": lo, "ci_high": hi})
    return entries


def correlation_entries(heads: pd.DataFrame, pairs, seed: int, n_boot: int = N_BOOT) -> list[dict]:
    out = []
    for count, stat in pairs:
        result = head_correlation(heads, heads, count=count, stat=stat, n_resamples=n_boot, seed=seed)
        out.append({"seed": seed, "count": count, "stat": stat, "rho": result.rho, "ci_low": result.ci_low,
                    "ci_high": result.ci_high, "n_heads": result.n_heads, "n_layers": result.n_layers,
                    "n_undefined": result.n_undefined, "p_value": result.p_value})
    return out


def probe_accuracy(probes: pd.DataFrame) -> pd.DataFrame:
    return probes.groupby(["condition", "category"], as_index=False).agg(
        accuracy=("correct", "mean"), logprob=("logprob", "mean"), n=("correct", "size"))


def analyze_interpret_run(spec: Spec, run, root: Path) -> tuple[dict, dict[str, list[pd.DataFrame]]]:
    folders = {seed: root / f"results/{spec.name}/{run.id}/seed{seed}" for seed in run.seeds}
    missing = [f"results/{spec.name}/{run.id}/seed{s}/{f}" for s, d in folders.items() for f in SEED_FILES
               if not (d / f).exists()]
    if missing:
        return {"missing": missing}, {}
    pairs = list(dict.fromkeys([*PAGE_CORRELATIONS, *((c.count, c.stat) for c in spec.criteria
                                                      if c.kind == "head_correlation" and c.run == run.id)]))
    entry: dict = {"superweights": [], "head_correlations": [], "probe_drops": []}
    tables: dict[str, list[pd.DataFrame]] = {"superweights": [], "head_critical": [], "probe_accuracy": []}
    for seed, folder in folders.items():
        summary = json.loads((folder / "summary.json").read_text())
        windows, heads = pd.read_parquet(folder / "windows.parquet"), pd.read_parquet(folder / "heads.parquet")
        probes = pd.read_parquet(folder / "probes.parquet")
        entry["superweights"] += superweight_entries(windows, summary, seed)
        entry["head_correlations"] += correlation_entries(heads, pairs, seed)
        entry["probe_drops"] += probe_drop_entries(probes, seed)
        tables["superweights"].append(pd.read_parquet(folder / "activations.parquet").assign(run=run.id, seed=seed))
        tables["head_critical"].append(heads.assign(run=run.id, seed=seed))
        tables["probe_accuracy"].append(probe_accuracy(probes).assign(run=run.id, seed=seed))
    entry["n_boot"] = N_BOOT
    return entry, tables


def analyze_interpret_runs(spec: Spec, root: Path) -> dict:
    runs, tables = {}, {"superweights": [], "head_critical": [], "probe_accuracy": []}
    for run in spec.runs:
        if run.kind != "interpret":
            continue
        runs[run.id], run_tables = analyze_interpret_run(spec, run, root)
        for name, frames in run_tables.items():
            tables[name].extend(frames)
    out = root / "results" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    for name, frames in tables.items():
        frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
            else pd.DataFrame()
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return {"runs": runs}
