"""Tables `esa readme` writes from committed results: a spec's graded criteria, a perplexity summary."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from esa.export.exhibits import COMPARATORS, cells
from esa.export.markdown import pipe_table
from esa.report.tables import DASH, as_number, fmt, ppl_frame


class TableSourceError(Exception):
    """A table whose source is missing or is not what the table kind reads."""


def number(value: Any) -> str:
    """The report's format (three significant digits), but powers of ten above 100,000: a diverged model's ratio
    reads 3.17e+10, not 31,732,414,367."""
    x = as_number(value)
    if isinstance(x, float) and abs(x) >= 1e5 and abs(x) != float("inf"):
        return f"{x:.3g}"
    return fmt(value)


def interval(ci: Any) -> str:
    return f"[{number(ci[0])}, {number(ci[1])}]" if ci and len(ci) == 2 else DASH


def criteria_frame(grades: Mapping[str, Any]) -> pd.DataFrame:
    """One row per criterion as graded: id, kind, what it measures, value with its 95% CI, the test, the verdict."""
    rows = []
    for cid, c in (grades.get("criteria") or {}).items():
        value, ci = number(c.get("value")), interval(c.get("ci"))
        rows.append({
            "criterion": f"`{cid}`" + (" (exploratory)" if c.get("exploratory") else ""),
            "kind": c.get("kind") or "",
            "what": c.get("description") or "",
            "value [95% CI]": value if ci == DASH else f"{value} {ci}",
            "test": f"{COMPARATORS.get(c.get('comparator'), c.get('comparator') or '')} {number(c.get('threshold'))}",
            "status": c.get("status", "inconclusive"),
        })
    return pd.DataFrame(rows, columns=["criterion", "kind", "what", "value [95% CI]", "test", "status"])


def perplexity_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The page's perplexity table (model, protocol, seeds, PPL mean ± std, CV, bits/byte, top-1, tokens)."""
    return ppl_frame(summary).drop(columns=["vocab", "status"], errors="ignore")


KINDS: dict[str, Callable[[Mapping[str, Any]], pd.DataFrame]] = {
    "criteria": criteria_frame, "perplexity": perplexity_frame}


def render_table(kind: str, source: str, root: Path) -> str:
    """The Markdown table of ``kind`` built from the JSON file ``source`` (relative to ``root``)."""
    if kind not in KINDS:
        raise TableSourceError(f"unknown table kind {kind!r} (known: {', '.join(KINDS)})")
    path = Path(root) / source
    if not path.is_file():
        raise TableSourceError(f"{source}: no such file")
    frame = KINDS[kind](json.loads(path.read_text(encoding="utf-8")))
    if frame.empty:
        raise TableSourceError(f"{source}: nothing for a {kind} table")
    headers, rows, numeric = cells(frame)
    # Cells of code spans would be escaped by pipe_table's escape(); criterion ids are already `code`.
    return pipe_table(headers, rows, numeric)
