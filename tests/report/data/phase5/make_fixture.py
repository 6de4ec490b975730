"""Regenerate this fixture (deterministic; no model is run):

    python tests/report/data/phase5/make_fixture.py

Pruning: builds, in a temporary project, the files the prune stages would write for specs/phase5.yaml (the shared
baseline's per-window NLL, each seed's conditions.parquet and sparsity.parquet), with every arm's NLL per token
shifted from the baseline by ``QUALITY[arm] · 1.6 · sparsity²`` (× 1.25 in matrix groups) plus a small
per-document noise (none for magnitude, whose masks are the same for every seed); random at 70% per matrix
diverges on seed 2. The real grade stage (esa.grading.grade.grade_spec) then writes grades.json, analysis.json
and pruning.parquet, which are copied here (graded_at and the lock file's path fixed so reruns are identical).

Adaptation: adaptation.parquet and adaptation_curves.parquet are constructed directly from ``ADAPT`` in the
columns the grade stage of an adapt run writes (the spec here has no adapt run: the page shows no adaptation
section; the tests read these files to check the section's tables and charts).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
QUALITY = {"magnitude": 1.0, "wanda": 0.55, "grad_x_weight": 0.8, "random": 5.0, "magnitude+protected": 0.85}
MATRICES = {"layers.0.attn.q_proj": (64, 64), "layers.0.attn.o_proj": (64, 64), "layers.0.mlp.up_proj": (128, 64),
            "layers.0.mlp.down_proj": (64, 128)}
N_DOCS, PER_DOC, TOKENS = 12, 4, 64
DIVERGED = (2, "random", "matrix", 0.7)  # (seed, arm, group, sparsity)
# arm: (n_trainable, gain, forgetting, wall time in s)
ADAPT = {"full": (100_000, 0.60, 0.30, 120.0), "frozen": (99_000, 0.58, 0.12, 118.0),
         "fisher": (100_000, 0.55, 0.10, 131.0), "top": (1_000, 0.40, 0.08, 64.0),
         "random": (1_000, 0.25, 0.04, 63.0), "bottom": (1_000, 0.15, 0.02, 63.0), "lora": (4_096, 0.45, 0.06, 71.0)}
ADAPT_SEEDS, STEPS = (1, 2), 50


def effect(arm: str, group: str, sparsity: float) -> float:
    return QUALITY[arm] * 1.6 * sparsity**2 * (1.25 if group == "matrix" else 1.0)


def reached(arm: str, group: str, sparsity: float) -> pd.DataFrame:
    """Per matrix: zeros after pruning with exact floor counts (per row or per matrix); random also zeroes
    ~(1 − s) of the 7 weights of q_proj that are exactly zero before pruning (magnitude-like masks take them)."""
    rows = []
    for name, (r, c) in MATRICES.items():
        zeros = r * math.floor(sparsity * c) if group == "row" else math.floor(sparsity * r * c)
        if arm == "random" and name.endswith("q_proj"):
            zeros += round(7 * (1 - sparsity))
        rows.append({"name": name, "n": r * c, "zeros": zeros, "fraction": zeros / (r * c)})
    return pd.DataFrame(rows)


def write_prune_inputs(root: Path, spec) -> None:
    run = spec.run("pr")
    rng = np.random.default_rng(5)
    base = pd.DataFrame([{"window_id": f"d{d}:{w}", "doc_id": f"d{d}", "n_tokens": TOKENS,
                          "nll_sum": TOKENS * (3.0 + level)}
                         for d in range(N_DOCS) for w, level in enumerate(rng.normal(0, 0.2, PER_DOC))])
    (root / run.baseline_dir()).mkdir(parents=True)
    base.to_parquet(root / run.baseline_dir() / "sequences.parquet", index=False)
    codes = np.repeat(np.arange(N_DOCS), PER_DOC)
    for seed in run.seeds:
        frames, sparsity = [], []
        for i, arm in enumerate(run.arms()):
            method, protected = arm.removesuffix("+protected"), arm.endswith("+protected")
            draw = np.random.default_rng((seed, i)).standard_normal(N_DOCS)
            noise = np.zeros(N_DOCS) if arm == "magnitude" else 0.02 * draw
            for group in run.groups:
                for s in run.sparsities:
                    nll = base["nll_sum"] + TOKENS * (effect(arm, group, s) + noise[codes])
                    if (seed, arm, group, s) == DIVERGED:
                        nll = nll.where(base.index != 3, math.inf)
                    labels = {"arm": arm, "method": method, "protected": protected, "group": group, "sparsity": s}
                    frames.append(base.assign(nll_sum=nll, **labels, diverged=not np.isfinite(nll).all()))
                    sparsity.append(reached(arm, group, s).assign(**labels))
        out = root / f"results/{spec.name}/pr/seed{seed}"
        out.mkdir(parents=True)
        pd.concat(frames, ignore_index=True).to_parquet(out / "conditions.parquet", index=False)
        pd.concat(sparsity, ignore_index=True).to_parquet(out / "sparsity.parquet", index=False)


def grade_prune(out: Path) -> None:
    from esa.grading.grade import grade_spec
    from esa.spec import load_spec

    cwd = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "specs").mkdir()
        shutil.copy(HERE / "specs/phase5.yaml", root / "specs/phase5.yaml")
        os.chdir(root)  # the spec's source is recorded as written: specs/phase5.yaml
        try:
            spec = load_spec("specs/phase5.yaml")
            write_prune_inputs(root, spec)
            grades, path = grade_spec(spec, root)
        finally:
            os.chdir(cwd)
        grades["graded_at"] = "2026-12-02T15:00:00Z"
        grades["lock"]["lock_file"] = "specs/phase5.lock"
        (out / "grades.json").write_text(json.dumps(grades, indent=1) + "\n")
        for name in ("analysis.json", "pruning.parquet"):
            shutil.copy(path.parent / name, out / name)


def adaptation() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, curves = [], []
    for seed in ADAPT_SEEDS:
        rng = np.random.default_rng(seed)
        for arm, (n, gain, forgetting, wall) in ADAPT.items():
            g, f = gain + 0.02 * rng.standard_normal(), forgetting + 0.01 * rng.standard_normal()
            loss = [3.0 - g * (1 - math.exp(-step / 15)) for step in range(0, STEPS + 1, 10)]
            rows.append({"run": "ad", "seed": seed, "arm": arm, "n_trainable": n, "steps": STEPS,
                         "forgetting": f, "forgetting_ci_low": f - 0.03, "forgetting_ci_high": f + 0.03,
                         "gain": g, "gain_ci_low": g - 0.05, "gain_ci_high": g + 0.05, "gain_per_param": g / n,
                         "ppl_before": 20.0, "ppl_after": 20.0 * math.exp(f), "new_ppl_before": 50.0,
                         "new_ppl_after": 50.0 * math.exp(-g), "wall_time_s": wall + seed,
                         "final_train_loss": loss[-1]})
            curves.extend({"run": "ad", "seed": seed, "arm": arm, "step": step, "loss": value}
                          for step, value in zip(range(0, STEPS + 1, 10), loss))
    return pd.DataFrame(rows), pd.DataFrame(curves)


def main() -> None:
    out = HERE / "results/phase5"
    out.mkdir(parents=True, exist_ok=True)
    grade_prune(out)
    table, curves = adaptation()
    table.to_parquet(out / "adaptation.parquet", index=False)
    curves.to_parquet(out / "adaptation_curves.parquet", index=False)


if __name__ == "__main__":
    sys.exit(main())
