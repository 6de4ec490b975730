"""Grade-stage analysis of scaling runs: each ladder model's quantities per seed, read from its score (and perturb)
runs' results, then each quantity fitted against N (esa.analysis.scaling). Written to analysis.json (the fits) and
scaling.parquet (one row per model, seed and quantity) for the page; the scaling criteria grade the fits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from esa.analysis import scaling_quantities as q
from esa.analysis.scaling import analyze_scaling
from esa.analysis.scaling_data import pairwise_observations
from esa.spec import Spec
from esa.spec.scaling_runs import SCALING_QUANTITIES, ladder_runs

PAIRWISE = ("stability_jaccard",)
NOT_MEASURED = {"delta_ppl_ratio": "the scaling run names no perturb runs",
                "spike_ratio": "the score runs do not compute superweight",
                "stability_jaccard": "the score runs have a single seed"}


def _seed_dir(spec: Spec, run_id: str, seed: int) -> str:
    return f"results/{spec.name}/{run_id}/seed{seed}"


def _read_model(spec: Spec, root: Path, run, model: str, score_run, perturb_run) -> tuple[list[dict], dict, list[str]]:
    """Per-seed rows of one model's quantities, its facts (N, tokenizer), and missing files."""
    rows, missing, sizes, tokenizers, topk, chance = [], [], set(), set(), {}, set()
    for seed in score_run.seeds:
        folder = _seed_dir(spec, score_run.id, seed)
        files = {name: root / folder / name for name in ("summary.json", "tensor_stats.parquet", "topk.parquet",
                                                         "superweight.json", f"scores/{run.metric}.safetensors")}
        absent = [f"{folder}/{name}" for name, path in files.items() if not path.exists()]
        if absent:
            missing.extend(absent)
            continue
        summary = json.loads(files["summary.json"].read_text())
        sizes.add(summary["model_size"][run.size])
        tokenizers.add(summary["tokenizer_sha256"])
        topk[seed] = pd.read_parquet(files["topk.parquet"])
        stats = pd.read_parquet(files["tensor_stats.parquet"])
        chance.add(round(q.stability_chance(stats, run.metric, run.k), 12))
        values = q.distribution_quantities(q.pooled_scores(files[f"scores/{run.metric}.safetensors"]),
                                           run.critical_multiple)
        values["hill_alpha"] = q.hill_alpha(stats, run.metric)
        superweight = json.loads(files["superweight.json"].read_text())
        if superweight.get("requested", True):  # written as {"requested": false} when the run lacks the metric
            values["spike_ratio"] = q.spike_ratio(superweight)
        rows.extend({"model": model, "seed": seed, "source": score_run.id, "quantity": name, "value": value}
                    for name, value in values.items())
    if len(topk) >= 2:
        matrix = q.stability_matrix(topk, run.metric, run.mode, run.k)
        seeds = list(topk)
        rows.extend({"model": model, "seed": None, "seed_a": seeds[i], "seed_b": seeds[j], "source": score_run.id,
                     "quantity": "stability_jaccard", "value": float(matrix[i, j])}
                    for i in range(len(seeds)) for j in range(i + 1, len(seeds)))
    if perturb_run is not None:
        for seed in perturb_run.seeds:
            path = root / _seed_dir(spec, perturb_run.id, seed) / "summary.json"
            if not path.exists():
                missing.append(str(path.relative_to(root)))
                continue
            conditions = pd.DataFrame(json.loads(path.read_text())["conditions"])
            rows.append({"model": model, "seed": seed, "source": perturb_run.id, "quantity": "delta_ppl_ratio",
                         "value": q.delta_ppl_ratio(conditions, run.control)})
    return rows, {"sizes": sizes, "tokenizers": tokenizers, "stability_chance": chance}, missing


def _observations(table: pd.DataFrame, sizes: dict[str, float], quantity: str) -> list:
    rows = table[table["quantity"] == quantity]
    out = []
    for model, group in rows.groupby("model", sort=False):
        if quantity in PAIRWISE:
            seeds = sorted(set(group["seed_a"]) | set(group["seed_b"]))
            index = {s: i for i, s in enumerate(seeds)}
            matrix = [[math.nan] * len(seeds) for _ in seeds]
            for _, r in group.iterrows():
                matrix[index[r["seed_a"]]][index[r["seed_b"]]] = matrix[index[r["seed_b"]]][index[r["seed_a"]]] = r["value"]
            out.append(pairwise_observations(model, sizes[model], matrix))
        else:
            out.append({"model": model, "n_params": sizes[model], "values": group["value"].tolist()})
    return out


def analyze_scaling_run(spec: Spec, run, root: Path) -> tuple[dict, pd.DataFrame]:
    ladder = ladder_runs(spec, run)
    rows, missing, sizes, tokenizers, evidence, chance = [], [], {}, {}, [], {}
    for model, score_run, perturb_run in ladder:
        model_rows, facts, absent = _read_model(spec, root, run, model, score_run, perturb_run)
        rows.extend(model_rows)
        missing.extend(absent)
        evidence.extend(f"{_seed_dir(spec, score_run.id, s)}/summary.json" for s in score_run.seeds)
        if len(facts["sizes"]) > 1:
            return {"error": f"{model}: seeds report different sizes {sorted(facts['sizes'])}"}, pd.DataFrame()
        if facts["sizes"]:
            sizes[model] = float(facts["sizes"].pop())
        tokenizers.update({model: t for t in facts["tokenizers"]})
        if facts["stability_chance"]:
            chance[model] = max(facts["stability_chance"])  # the same on every seed: sizes decide it
    table = pd.DataFrame(rows)
    summary: dict = {"size": run.size, "metric": run.metric, "models": [m for m, _, _ in ladder],
                     "n_params": sizes, "stability_chance": chance, "evidence": evidence, "quantities": {}}
    if missing:
        summary["missing"] = missing
        return summary, table
    if len(set(tokenizers.values())) > 1:
        groups: dict[str, list[str]] = {}
        for model, digest in tokenizers.items():
            groups.setdefault(digest[:12], []).append(model)
        summary["error"] = ("the ladder's models have different tokenizers (" + "; ".join(
            f"{', '.join(models)}: {digest}" for digest, models in groups.items()) + "): per-token quantities of them "
            "do not belong in one fit")
        return summary, table
    table["n_params"] = table["model"].map(sizes)
    for quantity in SCALING_QUANTITIES:
        if quantity not in set(table["quantity"]):
            summary["quantities"][quantity] = {"error": f"{quantity} was not measured ({NOT_MEASURED.get(quantity, 'no values')})"}
            continue
        try:
            summary["quantities"][quantity] = analyze_scaling(_observations(table, sizes, quantity))
        except ValueError as exc:
            summary["quantities"][quantity] = {"error": str(exc)}
    return summary, table


def analyze_scaling_runs(spec: Spec, root: Path) -> dict:
    """{"runs": {run id: summary}}; writes results/<spec>/scaling.parquet (every run's per-seed quantities)."""
    runs, tables = {}, []
    for run in spec.runs:
        if run.kind == "scaling":
            runs[run.id], table = analyze_scaling_run(spec, run, root)
            if len(table):
                tables.append(table.assign(run=run.id))
    out = root / "results" / spec.name / "scaling.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["run", "model", "n_params", "seed", "seed_a", "seed_b", "source", "quantity", "value"]
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    frame.reindex(columns=columns).to_parquet(out, index=False)
    return {"runs": runs}
