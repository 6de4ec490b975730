"""Phase-2 analyses over the scoring stages' artifacts: stability across seeds, cross-metric agreement, heavy
tails and hotspots. Computed once by the grade stage; written for the report; read by the graders."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd

from esa.analysis.hotspots import hotspot_enrichment, hotspots
from esa.analysis.overlap import overlap, seed_mean_ci
from esa.analysis.stability import pairwise_jaccard
from esa.analysis.tails import heavy_tail_summary, tail_excess
from esa.engine.scoring.metrics import weight_power
from esa.spec import Spec


def seed_dir(spec: Spec, run_id: str, seed: int) -> str:
    return f"results/{spec.name}/{run_id}/seed{seed}"


def _read(root: Path, rel: str) -> pd.DataFrame | None:
    path = root / rel
    return pd.read_parquet(path) if path.exists() else None


def top_sets(spec: Spec, root: Path, run, metric: str, mode: str, k: int) -> tuple[dict[int, pd.DataFrame], list[str]]:
    """Per seed of a score run, its top-k selection of one metric and mode (rank < k); and the files missing."""
    sets, missing = {}, []
    for seed in run.seeds:
        rel = f"{seed_dir(spec, run.id, seed)}/topk.parquet"
        frame = _read(root, rel)
        if frame is None:
            missing.append(rel)
        else:
            sets[seed] = frame[(frame["metric"] == metric) & (frame["mode"] == mode) & (frame["rank"] < k)]
    return sets, missing


def _load_scores(root: Path, spec: Spec, run_id: str, seed: int, metric: str):
    """Full score tensors saved by the scoring stage (small models), as a (tensor, flat_index) → score lookup."""
    path = root / seed_dir(spec, run_id, seed) / "scores" / f"{metric}.safetensors"
    if not path.exists():
        return None
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    return lambda tensor, flat_index: float(tensors[tensor].reshape(-1)[flat_index])


def analyze_run(spec: Spec, run, root: Path) -> tuple[dict, list[dict], list[str]]:
    """Everything Phase 2 grades for one score run: returns (analysis, stability-vs-k rows, missing files)."""
    topk, stats, missing = {}, {}, []
    for seed in run.seeds:
        base = seed_dir(spec, run.id, seed)
        topk[seed], stats[seed] = _read(root, f"{base}/topk.parquet"), _read(root, f"{base}/tensor_stats.parquet")
        missing += [f"{base}/{name}" for name, frame in (("topk.parquet", topk[seed]),
                                                        ("tensor_stats.parquet", stats[seed])) if frame is None]
    if missing:
        return {"missing": missing}, [], missing
    result: dict = {"seeds": list(run.seeds), "stability": {}, "tails": {}, "hotspots": {}, "overlap": {}}
    curve: list[dict] = []
    for metric, mode in itertools.product(run.metrics, run.modes):
        frames = {s: topk[s][(topk[s]["metric"] == metric) & (topk[s]["mode"] == mode)] for s in run.seeds}
        for k in sorted(set(run.ks()) | {run.topk}):
            stab = pairwise_jaccard({s: f[f["rank"] < k] for s, f in frames.items()}, rng_seed=k)
            entry = {"run": run.id, "metric": metric, "mode": mode, "k": k, **stab.as_dict()}
            curve.append(entry)
            result["stability"][f"{metric}/{mode}/k{k}"] = entry
    for metric in run.metrics:
        chosen_stats = {s: stats[s][stats[s]["metric"] == metric] for s in run.seeds}
        per_seed = [heavy_tail_summary(frame).as_dict() for frame in chosen_stats.values()]
        result["tails"][metric] = {"value": _mean([t["value"] for t in per_seed]), "per_seed": per_seed,
                                   "null": null_excess(run, metric, chosen_stats)}
        if "global" in run.modes:
            for by in ("layer", "component"):
                result["hotspots"][f"{metric}/{by}"] = run_hotspots(topk, chosen_stats, run.seeds, metric, by)
    for (a, b), mode in itertools.product(itertools.combinations(run.metrics, 2), run.modes):
        result["overlap"][f"{a}|{b}/{mode}"] = pair_overlap(spec, root, (run, a), (run, b), mode, run.topk)
    return result, curve, []


def null_excess(run, metric: str, stats_by_seed: dict) -> dict:
    """The graded tail excess over the no-structure null, or why there is none."""
    power = weight_power(metric, getattr(run, "hutchinson_mode", "abs"))
    if power is None:
        return {"defined": False, "reason": f"no null defined for {metric} (its score has no weight factor)"}
    return {"defined": True, "weight_power": power, **tail_excess(stats_by_seed).as_dict()}


def run_hotspots(topk: dict, stats_by_seed: dict, seeds: list[int], metric: str, by: str) -> dict:
    """Graded enrichment (with its Monte-Carlo null) and the descriptive chi-square, per seed."""
    chosen = {s: topk[s][(topk[s]["metric"] == metric) & (topk[s]["mode"] == "global")] for s in seeds}
    params = {s: stats_by_seed[s].rename(columns={"count": "n_params"}) for s in seeds}
    tests = [hotspots(chosen[s], params[s], by=by).as_dict() for s in seeds]
    enrich = hotspot_enrichment(chosen, params[seeds[0]], by=by)
    return {"pvalue_max": max(t["pvalue"] for t in tests), "per_seed": tests, "enrichment": enrich.as_dict()}


def pair_overlap(spec: Spec, root: Path, left, right, mode: str, k: int) -> dict:
    """Agreement of two (run, metric) top-k sets on every seed both runs have; means across those seeds."""
    (run_a, metric_a), (run_b, metric_b) = left, right
    seeds = [s for s in run_a.seeds if s in run_b.seeds]
    rows = []
    for seed in seeds:
        fa, fb = _read(root, f"{seed_dir(spec, run_a.id, seed)}/topk.parquet"), \
            _read(root, f"{seed_dir(spec, run_b.id, seed)}/topk.parquet")
        if fa is None or fb is None:
            return {"missing": True, "seeds": seeds}
        a = fa[(fa["metric"] == metric_a) & (fa["mode"] == mode) & (fa["rank"] < k)]
        b = fb[(fb["metric"] == metric_b) & (fb["mode"] == mode) & (fb["rank"] < k)]
        result = overlap(a, b, scores_a=_load_scores(root, spec, run_a.id, seed, metric_a),
                         scores_b=_load_scores(root, spec, run_b.id, seed, metric_b))
        rows.append({"seed": seed, **result.as_dict()})
    keys = ("jaccard", "overlap_coefficient", "spearman_rho")
    # CI of the seed mean by resampling seeds: NaN with one seed (nothing to say about the spread).
    ci = {key: list(seed_mean_ci([r[key] for r in rows], rng_seed=k)) for key in keys[:2]}
    return {"seeds": seeds, "k": k, "mode": mode, "per_seed": rows, "ci": ci,
            **{key: _mean([r[key] for r in rows]) for key in keys}}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if len(finite) == len(values) and finite else math.nan


def analyze_score_runs(spec: Spec, root: Path) -> dict:
    """Every score run of the spec: its part of analysis.json, and stability_vs_k.parquet (the curves)."""
    out = root / "results" / spec.name
    analysis: dict = {"runs": {}}
    curve: list[dict] = []
    for run in spec.runs:
        if run.kind != "score":
            continue
        result, rows, _ = analyze_run(spec, run, root)
        analysis["runs"][run.id] = result
        curve.extend(rows)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(curve).to_parquet(out / "stability_vs_k.parquet", index=False)
    return analysis
