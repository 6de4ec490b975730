"""Read Phase-2 artifacts for the report; every reader returns None or an empty frame when a file is missing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Phase2Results:
    """Artifacts under ``root/results/<phase>/``: per-run, per-seed scoring outputs and the grade stage's analyses."""

    root: Path
    phase: str = "phase2"

    @property
    def base(self) -> Path:
        return Path(self.root) / "results" / self.phase

    def seed_dir(self, run_id: str, seed: int) -> Path:
        return self.base / run_id / f"seed{seed}"

    def json(self, name: str, run_id: str | None = None, seed: int | None = None) -> dict[str, Any] | None:
        path = self.base / name if run_id is None else self.seed_dir(run_id, seed) / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def parquet(self, name: str, run_id: str | None = None, seed: int | None = None) -> pd.DataFrame | None:
        path = self.base / name if run_id is None else self.seed_dir(run_id, seed) / name
        return pd.read_parquet(path) if path.is_file() else None

    def per_seed(self, run: Any, name: str) -> dict[int, Any]:
        """{seed: content} for the seeds of ``run`` that have the file (JSON or parquet by suffix)."""
        read = self.parquet if name.endswith(".parquet") else self.json
        found = {seed: read(name, run.id, seed) for seed in run.seeds}
        return {seed: value for seed, value in found.items() if value is not None}

    def stacked(self, run: Any, name: str) -> pd.DataFrame:
        """One parquet artifact over all seeds of ``run``, with run and seed columns (empty when none exist)."""
        frames = [f.assign(run=run.id, seed=seed) for seed, f in self.per_seed(run, name).items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @cached_property
    def analysis(self) -> dict[str, Any] | None:
        return self.json("analysis.json")

    def run_analysis(self, run_id: str) -> dict[str, Any]:
        """The grade stage's analysis of one run; {} when absent or when it only lists missing files."""
        result = ((self.analysis or {}).get("runs") or {}).get(run_id) or {}
        return {} if "missing" in result else result

    def stability(self) -> pd.DataFrame | None:
        return self.parquet("stability_vs_k.parquet")
