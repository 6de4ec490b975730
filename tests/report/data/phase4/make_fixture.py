"""Regenerate this fixture from the tiny Phase-4 project of tests/kinds (random-init local checkpoints):

    python -m pytest tests/kinds/test_scaling_kind.py --basetemp=/tmp/kinds-p4
    python tests/report/data/phase4/make_fixture.py /tmp/kinds-p4/kinds0

It copies the spec and the grade stage's files the page reads; analysis.json keeps only the scaling and
architecture runs (the page does not read the score and perturb runs' entries)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
FILES = ("grades.json", "analysis.json", "scaling.parquet", "architecture_layers.parquet")


def main(project: Path) -> None:
    (HERE / "specs").mkdir(exist_ok=True)
    shutil.copy(project / "specs/phase4.yaml", HERE / "specs/phase4.yaml")
    out = HERE / "results/phase4"
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(project / "results/phase4" / name, out / name)
    analysis = json.loads((out / "analysis.json").read_text())
    kept = {run: value for run, value in analysis["runs"].items() if run in ("lad", "arch")}
    (out / "analysis.json").write_text(json.dumps({"runs": kept}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
