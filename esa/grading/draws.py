"""Which data each seed drew: pool sizes, parts, and pairwise overlap, read back from the stages' sampling.json.

Seeds must draw disjoint data, or stability and seed-to-seed spread are inflated; a criterion that compares
seeds is only graded when the record shows they shared no document.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

from esa.spec import Spec

SEEDED_KINDS = ("eval", "score", "ablation_check", "perturb")


def seed_dir(spec: Spec, run_id: str, seed: int) -> str:
    return f"results/{spec.name}/{run_id}/seed{seed}"


def run_draws(root: Path, spec: Spec, run) -> dict:
    """Per seed the draw's scalars; per pair of seeds the shared documents and windows.

    A perturbation run's windows are its shared baseline's (one window seed on one part of the pool).
    """
    if run.kind == "perturb":
        folders = {run.eval_seed: run.baseline_dir()}
    else:
        folders = {seed: seed_dir(spec, run.id, seed) for seed in run.seeds}
    records, missing = {}, []
    for seed, folder in folders.items():
        path = root / folder / "sampling.json"
        if path.exists():
            records[seed] = json.loads(path.read_text())
        else:
            missing.append(str(path.relative_to(root)))
    pairs = []
    for a, b in combinations(records, 2):
        docs = set(records[a]["doc_ids"]) & set(records[b]["doc_ids"])
        windows = set(records[a]["window_ids"]) & set(records[b]["window_ids"])
        pairs.append({"seed_a": a, "seed_b": b, "shared_docs": len(docs), "shared_windows": len(windows)})
    seeds = {str(seed): {k: v for k, v in r.items() if k not in ("doc_ids", "window_ids")}
             for seed, r in records.items()}
    first = next(iter(records.values()), {})
    return {
        "run": run.id, "kind": run.kind, "seeds": seeds, "pairs": pairs, "missing": missing,
        "pool_windows": first.get("pool_windows"), "pool_docs": first.get("pool_docs"),
        "folds": first.get("folds"), "unit": first.get("unit"),
        "max_shared_docs": max((p["shared_docs"] for p in pairs), default=0),
        "max_shared_windows": max((p["shared_windows"] for p in pairs), default=0),
        "shortfall": sorted(int(s) for s, r in seeds.items() if r.get("shortfall")),
    }


def phase_draws(spec: Spec, root: Path) -> dict[str, dict]:
    """run id -> its draws, for every run whose seeds draw windows."""
    return {run.id: run_draws(root, spec, run) for run in spec.runs if run.kind in SEEDED_KINDS}


def overlap_problem(draws: dict | None) -> str | None:
    """Why seeds of a run cannot be compared as independent replicates, or None when they can."""
    if draws is None:
        return None
    if draws["missing"]:
        return f"no record of the data each seed drew ({draws['missing'][0]})"
    if draws["max_shared_docs"] or draws["max_shared_windows"]:
        return (f"seeds share data (up to {draws['max_shared_docs']} documents / {draws['max_shared_windows']} "
                "windows per pair): their agreement would be inflated")
    return None


def shortfall_note(draws: dict | None) -> str:
    """A clause for a grade's reason when seeds got fewer windows than asked for."""
    if not draws or not draws["shortfall"]:
        return ""
    got = {r["n_windows"] for s, r in draws["seeds"].items() if int(s) in draws["shortfall"]}
    want = next(iter(draws["seeds"].values()))["requested"]
    return (f"{len(draws['shortfall'])} seeds drew only {min(got)}–{max(got)} of {want} windows "
            f"(the pool of {draws['pool_windows']} windows split into {draws['folds']} document-disjoint parts)")


def describe(draws: dict) -> str:
    """One line for pages and the log, e.g. 'pool 1812 windows / 180 docs; 3 parts; 400 windows from 61 docs
    per seed; no shared documents'."""
    if draws["missing"] and not draws["seeds"]:
        return "no sampling record"
    n = sorted(r["n_windows"] for r in draws["seeds"].values())
    d = sorted(r["n_docs"] for r in draws["seeds"].values())
    span = lambda v: f"{v[0]}" if v[0] == v[-1] else f"{v[0]}–{v[-1]}"  # noqa: E731
    shared = ("no shared documents" if not draws["max_shared_docs"] and not draws["max_shared_windows"] else
              f"up to {draws['max_shared_docs']} shared documents per pair")
    return (f"pool {draws['pool_windows']} windows / {draws['pool_docs']} docs; {draws['folds']} "
            f"{'document-disjoint' if draws['unit'] == 'document' else 'window-disjoint'} parts; "
            f"{span(n)} windows from {span(d)} docs per seed; {shared}")


__all__ = ["phase_draws", "run_draws", "overlap_problem", "shortfall_note", "describe"]
