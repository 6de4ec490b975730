"""Backdoor-fingerprint tables: every sibling's attack success and scores, and each score's AUC per seed. Read from
the grade stage's fingerprint.parquet and analysis (``runs.<id>``: aucs, backdoor); the charts
(esa.report.charts_fingerprint) share these frames."""

from __future__ import annotations

from typing import Any

import pandas as pd

from esa.report.tables import fmt, fmt_ci

CLASSES = {True: "backdoored", False: "clean"}
SCORE_LABELS = {"shift": "top-k shift from the base model", "profile": "matrix-profile score (leave-one-out)"}


def fingerprint_runs(spec) -> list:
    return [run for run in spec.runs if run.kind == "fingerprint"] if spec is not None else []


def sibling_frame(table: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """The run's siblings (the base model's rows left out), long over scores: one row per sibling and score, with
    the class as a label, for the strip chart."""
    if table is None or table.empty or "run" not in table:
        return pd.DataFrame(columns=["seed", "sibling", "class", "score", "value"])
    rows = table[(table["run"] == run_id) & (table["role"] == "sibling")].copy()
    rows["class"] = rows["poisoned"].map(CLASSES)
    long = rows.melt(id_vars=["seed", "sibling", "class"], value_vars=list(SCORE_LABELS), var_name="score")
    long["score"] = long["score"].map(SCORE_LABELS)
    return long.dropna(subset=["value"]).reset_index(drop=True)


def auc_text(result: dict[str, Any], score: str) -> str:
    """Each seed's AUC with its 95% CI and permutation p: 'seed 1337: 0.84 [0.6, 1], p 0.02'."""
    parts = [f"seed {e['seed']}: {fmt(e['auc'])} {fmt_ci([e['ci_low'], e['ci_high']])}, p {fmt(e['p_value'])}"
             for e in result.get("aucs", []) if e["score"] == score]
    return "; ".join(parts) or "no AUC"


def sibling_table(table: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """One row per sibling (and the base model first, per seed): class, trigger → target top-1 and log-prob with
    and without the trigger, calibration loss, and both scores."""
    columns = {"seed": "seed", "sibling": "sibling", "class": "class", "top1_with": "top-1 with trigger",
               "top1_without": "top-1 without", "lift": "log-prob lift", "calibration_loss": "calibration loss",
               "shift": "shift", "profile": "profile score"}
    if table is None or table.empty or "run" not in table:
        return pd.DataFrame(columns=list(columns.values()))
    rows = table[table["run"] == run_id].copy()
    rows["class"] = [("base model" if role == "base" else CLASSES[bool(p)])
                     for role, p in zip(rows["role"], rows["poisoned"])]
    rows["sibling"] = ["base" if role == "base" else int(s) for role, s in zip(rows["role"], rows["sibling"])]
    rows = rows.sort_values(["seed", "role", "class"], kind="stable")
    out = rows[list(columns)].rename(columns=columns)
    for name in ("log-prob lift", "calibration loss", "shift", "profile score"):
        out[name] = out[name].map(fmt)
    for name in ("top-1 with trigger", "top-1 without"):
        out[name] = out[name].map(lambda x: f"{x:.0%}")
    return out.reset_index(drop=True)


def backdoor_text(result: dict[str, Any]) -> str:
    """Whether the backdoor took, per seed: poisoned vs clean siblings' mean trigger → target top-1."""
    parts = [f"seed {b['seed']}: {b['top1_with_poisoned']:.0%} vs {b['top1_with_clean']:.0%}"
             + ("" if b["took"] else " (did not take)") for b in result.get("backdoor", [])]
    return "; ".join(parts)
