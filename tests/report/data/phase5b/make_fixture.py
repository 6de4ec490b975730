"""Regenerate this fixture (deterministic; no model is run):

    python tests/report/data/phase5b/make_fixture.py

Builds, in a temporary project, the per-seed files the faults and interpret stages would write for
specs/phase5b.yaml (seeds 1 and 2), runs the real grade stage (esa.grading.grade.grade_spec) and copies grades.json,
analysis.json and the analysis tables here (graded_at and the lock file's path fixed so reruns are identical), with
the interpret run's per-seed summary.json (the page quotes its detector line).

Faults run ``bits`` (trials.parquet, attack.parquet, summary.json per seed):
- Baseline PPL 20 (fp32) and 20.5 (int8). Every trial flips ``round(rate × eligible bits)`` bits of 100,000 weights
  (32 or 8 bits each): fp32 3, 32, 320; int8 1, 8, 80 at rates 1e-6, 1e-5, 1e-4.
- ``COLLAPSED`` gives, per seed, how many of the 10 trials of each (format, rate, arm) collapse: the first ones; a
  collapse has PPL 40× the baseline, except trial 0 of a cell with 3 or more, which diverges (PPL ∞). The rest have
  PPL (1 + trial / 100) × the baseline. Pooled over both seeds int8 at 1e-4 collapses 12/20 with nothing exempt,
  2/20 with the critical set exempt, 10/20 with a random set exempt.
- Attack on int8, budget 6: ``ATTACK`` gives each arm's step of the first collapse per seed (None: censored, all 6
  flips made). The unrestricted attack collapses at flip 2 (seed 1, PPL 1000× baseline) and 3 (seed 2, PPL ∞);
  before a collapse PPL is (1 + step / 2) × the baseline for the searches and (1 + step / 1000) × for random flips.

Interpret run ``inside`` (activations.parquet, windows.parquet, heads.parquet, probes.parquet, summary.json):
- One super weight, model.layers.1.mlp.down_proj.weight (7, 3). Its dimension's activation ratio on the detector's
  prompt per layer 0–3: ``RATIO`` (other dimensions' largest |activation| 10), the same for both seeds.
- Held-out windows: 6 documents × 2 windows of 64 tokens per seed; NLL per token 3 + N(0, 0.1) per window, + 0.5 +
  N(0, 0.03) per document with the weight zeroed (PPL ratio ≈ e^0.5 ≈ 1.65). Sink mass per layer ``SINK`` + N(0,
  0.02); zeroed, layers 2 and 3 (after the weight's) lose 0.25 + N(0, 0.02) per document.
- Heads (4 layers × 4): critical weights per head ``TOTAL`` (q gets the larger half, o the rest); sink share
  0.1 + 0.05 × total and entropy 2.5 − 0.15 × total, each + N(0, 0.03) per seed and head.
- Probes: ``PROBES`` gives per category the items and how many are right at baseline, with the critical set
  zeroed, and under each of 3 random ablations (a rotating set), so the drops are exactly keyword 0.5, builtin 0,
  stdlib 0.375.
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
NAME = "phase5b"
BASELINE = {"fp32": 20.0, "int8": 20.5}
BITS = {"fp32": 32, "int8": 8}
N_WEIGHTS = 100_000
# (format, rate): trials collapsed per seed with nothing, the critical set, a random set exempt
COLLAPSED = {("fp32", 1e-6): (0, 0, 0), ("fp32", 1e-5): (2, 0, 2), ("fp32", 1e-4): (10, 4, 10),
             ("int8", 1e-6): (0, 0, 0), ("int8", 1e-5): (1, 0, 1), ("int8", 1e-4): (6, 1, 5)}
ATTACK = {"unrestricted": {1: 2, 2: 3}, "noncritical": {1: 5, 2: None}, "random": {1: None, 2: None}}
SW = {"weight": 0, "layer": 1, "param_name": "model.layers.1.mlp.down_proj.weight", "row": 7, "col": 3}
RATIO = {"baseline": [0.6, 38.0, 52.0, 61.0], "zeroed": [0.6, 0.9, 1.1, 1.2]}
SINK = [0.2, 0.55, 0.62, 0.66]
TOTAL = [[0, 1, 0, 2], [3, 6, 1, 2], [1, 4, 2, 0], [5, 0, 2, 3]]
PROBES = {"keyword": (10, 9, 3, 8), "builtin": (10, 8, 7, 7), "stdlib": (8, 6, 2, 5)}  # items, baseline, topk, random
DETECTOR = ("1 found: layer 1 (7, 3); largest input ratio 83.0 (layer 1), largest output ratio 126.0 (layer 1), "
            "threshold 50")


def trials(seed: int) -> pd.DataFrame:
    rows = []
    for (fmt, rate), counts in COLLAPSED.items():
        eligible = BITS[fmt] * N_WEIGHTS
        flips = max(1, round(rate * eligible))
        for arm, k in zip(("none", "critical", "random"), counts):
            for trial in range(10):
                ppl, status = BASELINE[fmt] * (1 + trial / 100), "ok"
                if trial < k:
                    ppl, status = (math.inf, "diverged") if trial == 0 and k >= 3 else (40 * BASELINE[fmt], "ok")
                rows.append({"seed": seed, "format": fmt, "rate": rate, "trial": trial, "arm": arm, "n_flips": flips,
                             "eligible_bits": eligible, "n_exempt": 0 if arm == "none" else 40, "n_weights": flips,
                             "ppl": ppl, "status": status, "collapsed": trial < k})
    return pd.DataFrame(rows)


def attack(seed: int) -> pd.DataFrame:
    rows, base = [], BASELINE["int8"]
    for a, (arm, hits) in enumerate(ATTACK.items()):
        hit = hits[seed]
        for step in range(1, (hit or 6) + 1):
            collapsed = step == hit
            grow = 1 + step / 1000 if arm == "random" else 1 + step / 2
            ppl = (1000 * base if seed == 1 else math.inf) if collapsed else base * grow
            old = 0.02 * (step + a)
            rows.append({"seed": seed, "format": "int8", "arm": arm, "step": step,
                         "key": f"model.layers.{step % 4}.mlp.down_proj.weight", "index": 100 * step + a,
                         "bit": 3 if arm == "random" else 6, "old_value": old,
                         "new_value": old + (0.5 if arm == "random" else -2.0),
                         "loss": math.log(min(ppl, 1e30)), "estimate": math.nan if arm == "random" else step * 0.8,
                         "ppl": ppl, "collapsed": collapsed, "budget": 6, "baseline_ppl": base})
    return pd.DataFrame(rows)


def write_faults(root: Path, spec) -> None:
    for seed in spec.run("bits").seeds:
        out = root / f"results/{NAME}/bits/seed{seed}"
        out.mkdir(parents=True)
        trials(seed).to_parquet(out / "trials.parquet", index=False)
        attack(seed).to_parquet(out / "attack.parquet", index=False)
        (out / "summary.json").write_text(json.dumps({"seed": seed, "baseline_ppl": BASELINE}, indent=1))


def activations() -> pd.DataFrame:
    rows = [{"condition": cond, "layer": layer, "dim": SW["row"], "token": 0, "value": -10 * ratio,
             "abs_value": 10 * ratio, "other_max_abs": 10.0, "ratio": ratio, "median_abs": 0.5,
             "ratio_to_median": 20 * ratio, "sink_share": SINK[layer] - (0.3 if cond == "zeroed" and layer else 0)}
            for cond, ratios in RATIO.items() for layer, ratio in enumerate(ratios)]
    return pd.DataFrame(rows).assign(param_name=SW["param_name"], row=SW["row"], col=SW["col"],
                                     expert=pd.array([None] * len(rows), "Int64"), weight=0)


def windows(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    docs = [f"s{seed}d{d}" for d in range(6)]
    level = rng.normal(0, 0.1, 12)
    raise_nll, lose_sink = 0.5 + rng.normal(0, 0.03, 6), 0.25 + rng.normal(0, 0.02, 6)
    sink = rng.normal(0, 0.02, (12, 4))
    rows = []
    for cond in ("baseline", "zeroed:0"):
        for w in range(12):
            d = w // 2
            nll = 64 * (3 + level[w] + (raise_nll[d] if cond != "baseline" else 0))
            for layer in range(4):
                drop = lose_sink[d] if cond != "baseline" and layer > SW["layer"] else 0
                rows.append({"condition": cond, "window_id": f"{docs[d]}:{w % 2}", "doc_id": docs[d],
                             "n_tokens": 64, "nll_sum": nll, "layer": layer,
                             "sink": SINK[layer] + sink[w, layer] - drop})
    return pd.DataFrame(rows)


def heads(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(100 + seed)
    rows = []
    for layer, counts in enumerate(TOTAL):
        for head, total in enumerate(counts):
            rows.append({"layer": layer, "head": head, "entropy": 2.5 - 0.15 * total + rng.normal(0, 0.03),
                         "sink_share": 0.1 + 0.05 * total + rng.normal(0, 0.03), "uniform_entropy": 3.0,
                         "n_queries": 756, "kv_head": head, "q": total - total // 2, "k": 0, "v": 0,
                         "o": total // 2, "total": total})
    return pd.DataFrame(rows)


def probes(seed: int) -> pd.DataFrame:
    rows = []
    conditions = [("baseline", 0), ("topk", 0)] + [("random", d) for d in range(3)]
    for category, (n, base, topk, rand) in PROBES.items():
        for condition, draw in conditions:
            for i in range(n):
                if condition == "random":
                    right = (i + draw + seed) % n < rand
                else:
                    right = i < (base if condition == "baseline" else topk)
                rows.append({"condition": condition, "draw": draw, "n_zeroed": 0 if condition == "baseline" else 40,
                             "category": category, "item": f"{category}-{i}", "answer_id": 100 + i,
                             "predicted_id": 100 + i if right else 0, "correct": right,
                             "logprob": -0.5 if right else -4.0, "rank": 0 if right else 3})
    return pd.DataFrame(rows)


def write_interpret(root: Path, spec) -> None:
    for fold, seed in enumerate(spec.run("inside").seeds):
        out = root / f"results/{NAME}/inside/seed{seed}"
        out.mkdir(parents=True)
        activations().to_parquet(out / "activations.parquet", index=False)
        windows(seed).to_parquet(out / "windows.parquet", index=False)
        heads(seed).to_parquet(out / "heads.parquet", index=False)
        probes(seed).to_parquet(out / "probes.parquet", index=False)
        summary = {"seed": seed, "superweights": [{**SW, "weight_value": -2.5, "output_ratio": 126.0}],
                   "detector": DETECTOR, "n_critical": 80, "n_windows": 12, "folds": 2, "fold": fold}
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def grade_fixture(out: Path) -> None:
    from esa.grading.grade import grade_spec
    from esa.spec import load_spec

    cwd = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "specs").mkdir()
        shutil.copy(HERE / f"specs/{NAME}.yaml", root / f"specs/{NAME}.yaml")
        os.chdir(root)  # the spec's source is recorded as written: specs/phase5b.yaml
        try:
            spec = load_spec(f"specs/{NAME}.yaml")
            write_faults(root, spec)
            write_interpret(root, spec)
            grades, path = grade_spec(spec, root)
        finally:
            os.chdir(cwd)
        grades["graded_at"] = "2026-12-03T15:00:00Z"
        grades["lock"]["lock_file"] = f"specs/{NAME}.lock"
        (out / "grades.json").write_text(json.dumps(grades, indent=1) + "\n")
        for name in ("analysis.json", "faults.parquet", "attacks.parquet", "superweights.parquet",
                     "head_critical.parquet", "probe_accuracy.parquet"):
            shutil.copy(path.parent / name, out / name)
        for seed in spec.run("inside").seeds:
            (out / f"inside/seed{seed}").mkdir(parents=True, exist_ok=True)
            shutil.copy(path.parent / f"inside/seed{seed}/summary.json", out / f"inside/seed{seed}/summary.json")


def main() -> None:
    out = HERE / f"results/{NAME}"
    out.mkdir(parents=True, exist_ok=True)
    grade_fixture(out)


if __name__ == "__main__":
    sys.exit(main())
