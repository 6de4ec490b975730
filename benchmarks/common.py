"""What the benchmark scripts share: a wall clock, the machine's description, and their section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def clock(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} torch threads"


def write_section(section: str, text: str, results: Path = RESULTS) -> None:
    """Replace the `section` heading's part of RESULTS.md with `text` (appended when the heading is new)."""
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    start = old.find(section)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(section))
        new = old[:start] + text + (old[end + 1:] if end >= 0 else "")
    results.write_text(new.rstrip("\n") + "\n")
