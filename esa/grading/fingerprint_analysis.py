"""Backdoor-fingerprint analysis, per seed: how well each sibling score ranks the backdoored siblings above the
clean ones (AUC, a 95% stratified-bootstrap CI over siblings, a label-permutation p), and whether the backdoor took
at all (poisoned siblings' attack success against clean siblings').

Scores: ``shift`` (1 − Jaccard of the sibling's global top-k set with the base model's, from the stage) and
``profile`` (leave-one-out nearest-centroid score on the matrices' shares of score mass: a sibling is scored by a
rule fitted without it). Written for the page (fingerprint.parquet: every sibling of every seed with both scores)
and read by the graders (analysis.json: ``runs.<id>`` with ``aucs`` and ``backdoor``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from esa.spec import Spec

N_BOOT = 2000
N_PERM = 9999
SEED_FILES = ("siblings.parquet", "profiles.parquet", "summary.json")
SCORES = ("shift", "profile")


def profile_scores(siblings: pd.DataFrame, profiles: pd.DataFrame) -> np.ndarray:
    """Leave-one-out nearest-centroid scores on matrix profiles, in the order of ``siblings``' rows."""
    from esa.analysis.sibling_auc import loo_scores

    wide = profiles.pivot(index="sibling", columns="matrix", values="share").sort_index(axis=1)
    features = wide.reindex(siblings["sibling"]).to_numpy(dtype=float)
    return loo_scores(features, siblings["poisoned"].astype(int).to_numpy())


def backdoor_entry(siblings: pd.DataFrame, seed: int) -> dict:
    """Mean attack success of poisoned and clean siblings; the backdoor took when poisoned siblings complete the
    trigger with the target more often (top-1) than clean ones."""
    entry: dict = {"seed": seed}
    for label, rows in (("poisoned", siblings[siblings["poisoned"]]), ("clean", siblings[~siblings["poisoned"]])):
        for column in ("top1_with", "top1_without", "logprob_with", "lift", "calibration_loss"):
            entry[f"{column}_{label}"] = float(rows[column].mean())
    entry["took"] = bool(entry["top1_with_poisoned"] > entry["top1_with_clean"])
    return entry


def auc_entries(siblings: pd.DataFrame, seed: int, n_boot: int = N_BOOT, n_perm: int = N_PERM) -> list[dict]:
    from esa.analysis.sibling_auc import auc_with_ci

    labels = siblings["poisoned"].astype(int).to_numpy()
    return [{"seed": seed, "score": score, **auc_with_ci(siblings[score].to_numpy(dtype=float), labels,
                                                         n_boot=n_boot, n_perm=n_perm, seed=seed).to_dict()}
            for score in SCORES]


def analyze_fingerprint_run(spec: Spec, run, root: Path) -> tuple[dict, list[pd.DataFrame]]:
    folders = {seed: root / f"results/{spec.name}/{run.id}/seed{seed}" for seed in run.seeds}
    missing = [f"results/{spec.name}/{run.id}/seed{s}/{f}" for s, d in folders.items() for f in SEED_FILES
               if not (d / f).exists()]
    if missing:
        return {"missing": missing}, []
    entry: dict = {"aucs": [], "backdoor": [], "n_boot": N_BOOT}
    tables = []
    for seed, folder in folders.items():
        table = pd.read_parquet(folder / "siblings.parquet")
        siblings = table[table["role"] == "sibling"].reset_index(drop=True)
        siblings["profile"] = profile_scores(siblings, pd.read_parquet(folder / "profiles.parquet"))
        entry["aucs"] += auc_entries(siblings, seed)
        entry["backdoor"].append(backdoor_entry(siblings, seed))
        base = table[table["role"] != "sibling"].assign(profile=np.nan)
        tables.append(pd.concat([base, siblings], ignore_index=True).assign(run=run.id, seed=seed))
    return entry, tables


def analyze_fingerprint_runs(spec: Spec, root: Path) -> dict:
    runs, tables = {}, []
    for run in spec.runs:
        if run.kind != "fingerprint":
            continue
        runs[run.id], frames = analyze_fingerprint_run(spec, run, root)
        tables.extend(frames)
    out = root / "results" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    frame.to_parquet(out / "fingerprint.parquet", index=False)
    return {"runs": runs}
