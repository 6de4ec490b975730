"""Regenerate this fixture (deterministic; no model is run):

    python tests/report/data/phase5/make_fixture.py

Pruning: builds, in a temporary project, the files the prune stages would write for specs/phase5.yaml (the shared
baseline's per-window NLL, each seed's conditions.parquet and sparsity.parquet), with every arm's NLL per token
shifted from the baseline by ``QUALITY[arm] · 1.6 · sparsity²`` (× 1.25 in matrix groups) plus a small
per-document noise (none for magnitude, whose masks are the same for every seed); random at 70% per matrix
diverges on seed 2. The real grade stage (esa.grading.grade.grade_spec) then writes grades.json, analysis.json
and pruning.parquet, which are copied here (graded_at and the lock file's path fixed so reruns are identical).

Adaptation: for the adapt run ``ad`` the files its stage would write per seed: conditions.parquet (each arm's NLL
on the baseline's windows raised by ``forgetting`` nats per token), domain.parquet (held-out instruction pairs, the
untrained model's NLL as arm "before" and each arm's lowered by ``gain``) and summary.json (trainable count, steps,
wall time and an exponential loss curve), from ``ADAPT`` with a small per-document noise drawn per seed and arm.
The same grade stage writes adaptation.parquet and adaptation_curves.parquet from them, and grades the
adapt_difference criteria.
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
N_PAIR_DOCS, PAIRS_PER_DOC = 10, 3
PAIR_TOKENS = (24, 40, 56)  # response tokens of each document's pairs (token-weighted means)


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


def write_baseline(root: Path, spec) -> pd.DataFrame:
    """The untrained model's per-window NLL, shared by the prune and the adapt run (same model, data, windows)."""
    rng = np.random.default_rng(5)
    base = pd.DataFrame([{"window_id": f"d{d}:{w}", "doc_id": f"d{d}", "n_tokens": TOKENS,
                          "nll_sum": TOKENS * (3.0 + level)}
                         for d in range(N_DOCS) for w, level in enumerate(rng.normal(0, 0.2, PER_DOC))])
    folder = root / spec.run("pr").baseline_dir()
    assert folder == root / spec.run("ad").baseline_dir()
    folder.mkdir(parents=True)
    base.to_parquet(folder / "sequences.parquet", index=False)
    return base


def write_prune_inputs(root: Path, spec, base: pd.DataFrame) -> None:
    run = spec.run("pr")
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


def loss_curve(gain: float, steps: int) -> list[dict]:
    return [{"step": step, "loss": 3.0 - gain * (1 - math.exp(-step / 15)), "lr": 3e-4}
            for step in range(10, steps + 1, 10)]


def write_adapt_inputs(root: Path, spec, base: pd.DataFrame) -> None:
    run = spec.run("ad")
    rng = np.random.default_rng(7)
    before = pd.DataFrame([{"window_id": f"p{d}::f{j}::{d * PAIRS_PER_DOC + j}", "doc_id": f"p{d}",
                            "n_tokens": PAIR_TOKENS[j], "nll_sum": PAIR_TOKENS[j] * (2.2 + level)}
                           for d in range(N_PAIR_DOCS) for j, level in enumerate(rng.normal(0, 0.3, PAIRS_PER_DOC))])
    window_docs = pd.factorize(base["doc_id"], sort=True)[0]
    pair_docs = pd.factorize(before["doc_id"], sort=True)[0]
    for seed in run.seeds:
        conditions, domain, arms = [], [before.assign(arm="before")], []
        for i, arm in enumerate(run.arms):
            n, gain, forgetting, wall = ADAPT[arm]
            noise = np.random.default_rng((seed, 100 + i))
            lost = forgetting + 0.02 * noise.standard_normal(N_DOCS)[window_docs]
            learned = gain + 0.02 * noise.standard_normal(N_PAIR_DOCS)[pair_docs]
            conditions.append(base.assign(nll_sum=base["nll_sum"] + base["n_tokens"] * lost, arm=arm))
            domain.append(before.assign(nll_sum=before["nll_sum"] - before["n_tokens"] * learned, arm=arm))
            curve = loss_curve(gain, run.steps)
            arms.append({"arm": arm, "n_trainable": n, "steps": run.steps, "wall_time_s": wall + seed,
                         "final_train_loss": curve[-1]["loss"], "loss_curve": curve})
        out = root / f"results/{spec.name}/ad/seed{seed}"
        out.mkdir(parents=True)
        pd.concat(conditions, ignore_index=True).to_parquet(out / "conditions.parquet", index=False)
        pd.concat(domain, ignore_index=True).to_parquet(out / "domain.parquet", index=False)
        (out / "summary.json").write_text(json.dumps({"seed": seed, "arms": arms}, indent=1))


def grade_fixture(out: Path) -> None:
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
            base = write_baseline(root, spec)
            write_prune_inputs(root, spec, base)
            write_adapt_inputs(root, spec, base)
            grades, path = grade_spec(spec, root)
        finally:
            os.chdir(cwd)
        grades["graded_at"] = "2026-12-02T15:00:00Z"
        grades["lock"]["lock_file"] = "specs/phase5.lock"
        (out / "grades.json").write_text(json.dumps(grades, indent=1) + "\n")
        for name in ("analysis.json", "pruning.parquet", "adaptation.parquet", "adaptation_curves.parquet"):
            shutil.copy(path.parent / name, out / name)


def main() -> None:
    out = HERE / "results/phase5"
    out.mkdir(parents=True, exist_ok=True)
    grade_fixture(out)


if __name__ == "__main__":
    sys.exit(main())
