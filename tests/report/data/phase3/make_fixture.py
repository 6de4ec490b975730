"""Regenerate this fixture's graded outputs (analysis.json, conditions.parquet, grades.json) from constructed
per-window tables that reproduce every seed's summary.json exactly.

    .venv/bin/python tests/report/data/phase3/make_fixture.py

The summaries come from a real run of the tiny model; only the windows are constructed: 16 evaluation documents
of 4 windows, each condition's per-window ΔNLL a fixed shape (a per-document shift plus window noise) scaled so
the condition's PPL equals its summary's to the last digit. Identical summaries get identical windows, as a
deterministic perturbation of a set shared by the seeds would.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # regrade.py, shared by the fixtures
from regrade import print_statuses, regrade  # noqa: E402
N_DOCS, PER_DOC, TOKENS = 16, 4, 127


def baseline(ppl: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    docs = np.repeat([f"doc{i:02d}" for i in range(N_DOCS)], PER_DOC)
    level = rng.normal(0, 0.3, N_DOCS).repeat(PER_DOC) + rng.normal(0, 0.1, len(docs))
    nll = TOKENS * (level - level.mean() + math.log(ppl))  # Σ nll_sum / Σ tokens = log(ppl) exactly
    return pd.DataFrame({"window_id": [f"{d}:{w % PER_DOC * 64}" for w, d in enumerate(docs)], "doc_id": docs,
                         "start": [w % PER_DOC * 64 for w in range(len(docs))], "n_tokens": TOKENS,
                         "n_bytes": 4 * TOKENS, "nll_sum": nll, "n_correct": 20})


def condition(base: pd.DataFrame, target_ppl: float | None, key: str) -> np.ndarray:
    if target_ppl is None:
        return np.full(len(base), np.inf)
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    shape = TOKENS * (1 + 0.4 * rng.standard_normal(N_DOCS).repeat(PER_DOC) + 0.15 * rng.standard_normal(len(base)))
    needed = len(base) * TOKENS * math.log(target_ppl) - base["nll_sum"].sum()
    return base["nll_sum"].to_numpy() + shape * needed / shape.sum()


def counts(perturbation: str, n: int, key: str) -> dict:
    """Weights that grew, shrank or kept their magnitude: a sign flip keeps it, the exponent-MSB flip grows it."""
    if perturbation == "sign_flip":
        return {"n_grew": 0, "n_shrank": 0, "n_unchanged": n}
    if perturbation == "bit_flip":
        return {"n_grew": n, "n_shrank": 0, "n_unchanged": 0}
    grew = int(np.random.default_rng(zlib.crc32(key.encode())).binomial(n, 0.5))
    return {"n_grew": grew, "n_shrank": n - grew, "n_unchanged": 0}


def build(project: Path) -> None:
    from esa.spec import load_spec

    shutil.copytree(HERE / "specs", project / "specs")
    spec = load_spec(project / "specs" / "phase3.yaml")
    for run in (r for r in spec.runs if r.kind == "perturb"):
        for seed in run.seeds:
            summary = json.loads((HERE / f"results/phase3/{run.id}/seed{seed}/summary.json").read_text())
            base = baseline(summary["baseline_ppl"])
            where = project / run.baseline_dir()
            where.mkdir(parents=True, exist_ok=True)
            base.to_parquet(where / "sequences.parquet", index=False)
            frames = []
            for c in summary["conditions"]:
                key = f"{c['target']}|{c['level']!r}|{c['ppl']!r}"  # equal summaries, equal windows
                frames.append(base.assign(nll_sum=condition(base, c["ppl"], key), target=c["target"],
                                          level=c["level"], n_touched=c["n_touched"],
                                          **counts(run.perturbation, c["n_touched"], key)))
            out = project / f"results/phase3/{run.id}/seed{seed}"
            out.mkdir(parents=True, exist_ok=True)
            pd.concat(frames, ignore_index=True).to_parquet(out / "conditions.parquet", index=False)


GRADED = ("analysis.json", "conditions.parquet", "grades.json")


def regenerate(into: Path = HERE / "results/phase3") -> dict:
    """Grade the fixture in a scratch project and copy its graded outputs into ``into``; return the grades."""
    return regrade("phase3", build, GRADED, into)


def main() -> None:
    print_statuses(regenerate())


if __name__ == "__main__":
    main()
