"""Reading a phase's artifacts back: per-run, per-seed evaluation metrics and their summary."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from esa.spec import Spec


def as_float(value) -> float:
    """Metrics JSON writes non-finite numbers as strings ('nan', 'inf'); read them back as floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class SeedResult:
    seed: int
    path: str
    metrics: dict | None  # None when the file is missing

    def metric(self, name: str) -> float:
        return as_float(self.metrics.get(name)) if self.metrics else math.nan


@dataclass
class RunEvidence:
    run: str
    model: str
    protocol: str
    seeds: list[SeedResult] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [s.path for s in self.seeds if s.metrics is None]

    def values(self, metric: str) -> list[float]:
        return [s.metric(metric) for s in self.seeds if s.metrics is not None]


def load_eval_evidence(spec: Spec, root: Path, run_ids: list[str] | None = None) -> list[RunEvidence]:
    runs = [run for run in spec.runs if run.kind == "eval" and (run_ids is None or run.id in run_ids)]
    evidence = []
    for run in runs:
        item = RunEvidence(run=run.id, model=run.model, protocol=run.protocol)
        for seed in run.seeds:
            rel = f"results/{spec.name}/{run.id}/seed{seed}/metrics.json"
            path = root / rel
            item.seeds.append(SeedResult(seed, rel, json.loads(path.read_text()) if path.exists() else None))
        evidence.append(item)
    return evidence


def coefficient_of_variation(values: list[float]) -> float:
    """std (ddof=1) / mean; NaN when undefined (fewer than two values, or any value non-finite)."""
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return math.nan
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else math.nan


def summarize(evidence: list[RunEvidence]) -> dict:
    """The per-run table the report shows (ppl mean ± std, CV, and per-seed values)."""
    runs = []
    for item in evidence:
        ppl = item.values("ppl")
        finite = [v for v in ppl if math.isfinite(v)]
        runs.append({
            "run": item.run,
            "model": item.model,
            "protocol": item.protocol,
            "seeds": [s.seed for s in item.seeds if s.metrics is not None],
            "missing": item.missing,
            "ppl": ppl,
            "ppl_mean": statistics.fmean(finite) if finite else math.nan,
            "ppl_std": statistics.stdev(finite) if len(finite) > 1 else math.nan,
            "ppl_cv": coefficient_of_variation(ppl),
            "bits_per_byte": item.values("bits_per_byte"),
            "top1_accuracy": item.values("top1_accuracy"),
            "n_tokens": item.values("n_tokens"),
            "vocab_size": max((s.metric("vocab_size") for s in item.seeds if s.metrics), default=math.nan),
            "status": [s.metrics.get("status", "ok") for s in item.seeds if s.metrics is not None],
        })
    return {"runs": runs}
