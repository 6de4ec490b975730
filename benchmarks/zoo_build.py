"""Build every embedded zoo model from a cold cache through DVC, one stage at a time, and time each stage.

    .venv/bin/python benchmarks/zoo_build.py [--write]

Runs `dvc repro --force --single-item` for the corpus, the six ladder sizes, ref-moe and ref-s-instruct in the
current project (so it retrains them: minutes), then prints wall time and peak RSS per stage and the ladder's total
against the 30-minute budget. Run it on an otherwise idle machine: two torch processes sharing two cores slow each
other far more than twofold.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, write_section  # noqa: E402
from esa.registry import INSTRUCT_MODELS, LADDER  # noqa: E402

SECTION = "## Model zoo: building every embedded model (CPU)"
BUDGET_MIN = 30


def timed_repro(stage: str) -> tuple[float, float]:
    """Seconds and peak RSS (GB) of the stage's own process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(["dvc", "repro", "--force", "--single-item", stage], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return seconds, peak / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    stages = ["corpus.stdlib", *(f"reference.{m}" for m in LADDER), "reference.ref-moe",
              *(f"instruct.{m}" for m in INSTRUCT_MODELS)]
    rows = {stage: timed_repro(stage) for stage in stages}
    ladder = rows["corpus.stdlib"][0] + sum(rows[f"reference.{m}"][0] for m in LADDER)
    lines = [SECTION, "", f"Machine: {machine()}; load average {load:.2f} before. `python benchmarks/zoo_build.py`: "
             "`dvc repro --force --single-item` per stage, in this order, nothing else running.", "",
             "| stage | wall time | peak RSS (max so far) |", "|---|---|---|"]
    lines += [f"| {stage} | {seconds / 60:.1f} min | {rss:.2f} GB |" for stage, (seconds, rss) in rows.items()]
    verdict = "within" if ladder <= BUDGET_MIN * 60 else "over"
    lines += ["", f"Corpus plus the {len(LADDER)}-size ladder from nothing: {ladder / 60:.1f} min ({verdict} the "
              f"{BUDGET_MIN}-minute budget); with ref-moe and the instruct sibling: "
              f"{sum(s for s, _ in rows.values()) / 60:.1f} min."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
