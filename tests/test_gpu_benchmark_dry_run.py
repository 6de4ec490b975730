"""The GPU benchmark is one prepared script for the day a GPU is lent: its dry run (a tiny shape on CPU) must run
every section end to end and write its numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_dry_run_measures_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_phase2.py"), "--dry-run", "--json", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 6 and any(name.startswith("stage work, 3 seeds") for name in rows)
    for name, row in rows.items():
        assert row["seconds"] and all(s > 0 for s in row["seconds"]), name
