"""What a phase exports: named tables (display-ready DataFrames) and named altair charts, plus the criteria table
every phase shares. The per-phase modules build them with the same functions the report pages call."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from esa.report.tables import DASH, as_number, fmt, fmt_ci

PHASES = ("phase1", "phase2", "phase3", "phase4", "phase5")
COMPARATORS = {">=": "≥", "<=": "≤", "==": "=", "!=": "≠"}  # as a paper writes them


class ExportError(Exception):
    """A one-line problem that stops an export (a missing results file, an unknown phase)."""


@dataclass(frozen=True)
class Table:
    name: str  # file stem and label suffix, e.g. "criteria"
    caption: str
    frame: pd.DataFrame  # numeric columns are formatted like the report's tables (fmt), the rest as text


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str
    chart: alt.TopLevelMixin


@dataclass
class Exhibits:
    phase: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def table(self, name: str, caption: str, frame: pd.DataFrame | None) -> None:
        """Add a table unless it has no rows (the page shows nothing for it either)."""
        if frame is not None and len(frame):
            self.tables.append(Table(name, caption, frame.reset_index(drop=True)))

    def figure(self, name: str, caption: str, chart: alt.TopLevelMixin | None) -> None:
        if chart is not None:
            self.figures.append(Figure(name, caption, chart))


def phase_name(phase: str) -> str:
    """'phase2' from 'phase2' or '2'; an ExportError for a phase no page exists for."""
    name = phase if phase.startswith("phase") else f"phase{phase}"
    if name not in PHASES:
        raise ExportError(f"unknown phase {phase!r} (known: {', '.join(PHASES)})")
    return name


def require(root: Path, rel: str, how: str) -> Path:
    """The path of a results file the export cannot do without; an ExportError naming it when it is missing."""
    path = Path(root) / rel
    if not path.is_file():
        raise ExportError(f"{rel}: no such file ({how})")
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def rerun_hint(phase: str) -> str:
    return f"run and grade the {phase} pipeline with `dvc repro grade.{phase}`"


# --- Shared tables -----------------------------------------------------------------------------------------


def hypotheses_frame(grades: Mapping[str, Any]) -> pd.DataFrame:
    """Hypothesis id and statement, as grades.json records them (the page's hypothesis list)."""
    hyps = grades.get("hypotheses") or {}
    items = hyps.items() if isinstance(hyps, Mapping) else ((h.get("id"), h.get("statement")) for h in hyps)
    return pd.DataFrame([{"hypothesis": hid, "statement": text} for hid, text in items],
                        columns=["hypothesis", "statement"])


def criteria_frame(grades: Mapping[str, Any]) -> pd.DataFrame:
    """One row per criterion: the report's criteria table without the HTML (badges, evidence links). Criteria
    amended after the pre-registration lock say so in a ``lock`` column, as the page flags them."""
    amended = ((grades.get("lock") or {}).get("changes") or {}).get("criteria") or {}
    rows = []
    for cid, c in (grades.get("criteria") or {}).items():
        rows.append({
            "criterion": cid,
            "hypothesis": c.get("hypothesis"),
            "description": c.get("description") or "",
            "value": _float(c.get("value")),
            "test": f"{COMPARATORS.get(c.get('comparator'), c.get('comparator') or '')} "
                    f"{fmt(c.get('threshold'))}".strip(),
            "CI": fmt_ci(c.get("ci")),
            "p": _float(c.get("p")),
            "status": c.get("status", "inconclusive"),
            "lock": f"{amended[cid]} after lock" if cid in amended else "",
        })
    df = pd.DataFrame(rows, columns=["criterion", "hypothesis", "description", "value", "test", "CI", "p", "status",
                                     "lock"])
    for optional in ("description", "lock"):  # no empty column when no criterion has one
        if not df[optional].astype(bool).any():
            df = df.drop(columns=optional)
    return df


def _float(value: Any) -> float:
    x = as_number(value)
    return math.nan if x is None else float(x)


def add_grades(exhibits: Exhibits, grades: Mapping[str, Any]) -> None:
    title = exhibits.phase.replace("phase", "Phase ")
    exhibits.table("hypotheses", f"{title}: hypotheses.", hypotheses_frame(grades))
    found = grades.get("counts") or {}
    counts = ", ".join(f"{found[s]} {s}" for s in ("pass", "fail", "inconclusive") if s in found)
    exhibits.table("criteria", f"{title}: success criteria as graded" + (f" ({counts})." if counts else "."),
                   criteria_frame(grades))


# --- Cells ------------------------------------------------------------------------------------------------


def cells(frame: pd.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    """(headers, rows of text, numeric flags): numbers as the report's tables show them (fmt; a dash when
    missing), everything else as text. Numeric columns, and text columns of formatted numbers (the report's
    frames are often display strings), are right-aligned by the writers."""
    number = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
              for c in frame.columns]
    rows = [[fmt(v) if num else _text(v) for v, num in zip(values, number)]
            for values in frame.itertuples(index=False, name=None)]
    numeric = [num or _all_numbers([r[i] for r in rows]) for i, num in enumerate(number)]
    return [str(c) for c in frame.columns], rows, numeric


_NUMBER_TEXT = re.compile(r"[−+-]?[\d.,]+(?:e[−+-]?\d+)?%?(?:\s*[±–]\s*[\d.,]+(?:e[−+-]?\d+)?%?)?|[−+-]?∞")


def _all_numbers(texts: list[str]) -> bool:
    shown = [t for t in texts if t != DASH]
    return bool(shown) and all(_NUMBER_TEXT.fullmatch(t) for t in shown)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return " ".join(str(value).split())  # a cell is one line in both formats
