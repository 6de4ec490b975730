"""Grade-stage analysis of architecture runs: each compared model's tensor_stats and top-k per seed, read from its
score run, summarised by esa.analysis.architecture into analysis.json (and architecture.parquet for the page: one
row per model, seed, component group and layer)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from esa.analysis.architecture import analyze_architecture, with_mass
from esa.analysis.expert_load import utilisation_vs_sensitivity
from esa.spec import Spec
from esa.spec.architecture_runs import architecture_models

FILES = ("tensor_stats.parquet", "topk.parquet", "summary.json")


def analyze_architecture_run(spec: Spec, run, root: Path) -> dict:
    frames, loads, missing, evidence = {}, {}, [], []
    for model, score_run in architecture_models(spec, run):
        frames[model], loads[model] = {}, []
        for seed in score_run.seeds:
            folder = f"results/{spec.name}/{score_run.id}/seed{seed}"
            paths = [f"{folder}/{name}" for name in FILES]
            evidence.extend(paths)
            absent = [p for p in paths if not (root / p).exists()]
            if absent:
                missing.extend(absent)
                continue
            frames[model][seed] = tuple(pd.read_parquet(root / p) for p in paths[:2])
            loads[model].append(json.loads((root / paths[2]).read_text()).get("expert_utilisation"))
    if missing:
        return {"missing": missing, "evidence": evidence}
    summary = analyze_architecture(frames, metric=run.metric, shifts=dict(run.shifts), k=run.k)
    for model, facts in summary["models"].items():
        if facts.get("moe"):  # does the sensitivity of each expert follow the tokens routed to it?
            masses = [with_mass(stats, run.metric) for stats, _ in frames[model].values()]
            facts["moe"]["utilisation"] = utilisation_vs_sensitivity(masses, loads[model])
    return {**summary, "evidence": evidence}


def layer_rows(run_id: str, summary: dict) -> list[dict]:
    """The depth profile of every model, long format, for the page's chart."""
    return [{"run": run_id, "model": model, "layer": row["layer"], "depth": row["depth"],
             "param_share": row["param_share"], "share": row["share"]["mean"],
             "share_low": (row["share"]["ci"] or [None, None])[0], "share_high": (row["share"]["ci"] or [None, None])[1],
             "enrichment": row["enrichment"]["mean"]}
            for model, facts in summary.get("models", {}).items() for row in facts.get("layers", [])]


def analyze_architecture_runs(spec: Spec, root: Path) -> dict:
    """{"runs": {run id: summary}}; writes results/<spec>/architecture_layers.parquet."""
    runs, rows = {}, []
    for run in spec.runs:
        if run.kind == "architecture":
            runs[run.id] = analyze_architecture_run(spec, run, root)
            rows.extend(layer_rows(run.id, runs[run.id]))
    columns = ["run", "model", "layer", "depth", "param_share", "share", "share_low", "share_high", "enrichment"]
    out = root / "results" / spec.name / "architecture_layers.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).to_parquet(out, index=False)
    return {"runs": runs}
