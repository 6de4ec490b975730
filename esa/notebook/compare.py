"""Experiment comparison: criteria as rows, the workspace, commits and experiments as columns.

`dvc exp show` puts every number of every metrics file in a column of its own (well over a thousand here); the
question "what did this experiment do to the verdicts" needs only each criterion's value and verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from esa.grading.criteria_values import STATUS_OF_CODE, finite
from esa.notebook.history import RunRecord
from esa.notebook.log import flatten


class CompareError(ValueError):
    """A column or spec the history does not hold (one line for the user)."""


@dataclass(frozen=True)
class Cell:
    value: float | None
    status: str

    @property
    def text(self) -> str:
        return f"{'—' if self.value is None else f'{self.value:.4g}'} {self.status}"


@dataclass
class Comparison:
    columns: list[str]
    rows: list[tuple[str, str, list[Cell | None]]]  # (spec, criterion, one cell per column)
    notes: list[str] = field(default_factory=list)


def criterion_cells(grades: Mapping[str, Any]) -> dict[str, Cell]:
    """Each criterion's value and verdict; grades.json written before `criteria_values` existed has only
    the "criteria" section, which carries the same two fields."""
    flat = grades.get("criteria_values")
    if isinstance(flat, Mapping):
        return {cid: Cell(finite(c.get("value")), STATUS_OF_CODE.get(c.get("status_code"), "inconclusive"))
                for cid, c in flat.items() if isinstance(c, Mapping)}
    return {cid: Cell(finite(c.get("value")), str(c.get("status") or "?"))
            for cid, c in (grades.get("criteria") or {}).items() if isinstance(c, Mapping)}


def column_label(record: RunRecord) -> str:
    if record.kind == "workspace":
        return "workspace"
    return record.name or record.rev[:7]


def _matches(record: RunRecord, name: str) -> bool:
    if name == "workspace":
        return record.kind == "workspace"
    return name == record.name or (len(name) >= 4 and record.rev.startswith(name))


def select_columns(records: Sequence[RunRecord], names: Sequence[str]) -> list[RunRecord]:
    """The records named (workspace, a branch, a commit sha prefix, an experiment name), in the order given."""
    graded = [r for r in records if r.grades]
    if not names:
        return graded
    chosen = []
    for name in names:
        found = next((r for r in graded if _matches(r, name)), None)
        if found is None:
            known = ", ".join(dict.fromkeys(column_label(r) for r in graded)) or "none"
            raise CompareError(f"no graded revision or experiment named '{name}' (graded: {known}; "
                               "look further back with -n)")
        chosen.append(found)
    return chosen


def _drop_repeated_workspace(columns: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    # The workspace usually is HEAD or an applied experiment; a second identical column is noise.
    for record in columns:
        if record.kind != "workspace":
            continue
        twin = next((r for r in columns if r is not record and r.grades == record.grades), None)
        if twin is not None:
            return [r for r in columns if r is not record], [f"workspace: same grades as {column_label(twin)}"]
    return columns, []


def unique_labels(columns: Sequence[RunRecord]) -> list[str]:
    labels = [column_label(r) for r in columns]
    return [label if labels.count(label) == 1 else f"{label}@{r.rev[:7]}" for label, r in zip(labels, columns)]


def params_notes(columns: Iterable[RunRecord], records: Sequence[RunRecord]) -> list[str]:
    """What each experiment set, relative to the commit it ran from (`dvc exp run -S` arguments)."""
    by_rev = {r.rev: r for r in records}
    notes = []
    for record in columns:
        base = by_rev.get(record.baseline or "")
        if record.kind != "experiment" or base is None:
            continue
        before, after = flatten(base.params), flatten(record.params)
        changed = [f"{key}={after[key]}" for key in sorted(after) if before.get(key) != after[key]]
        notes.append(f"{column_label(record)} (from {base.rev[:7]}): {', '.join(changed) or 'no params changed'}")
    return notes


def compare(records: Sequence[RunRecord], spec: str | None = None, names: Sequence[str] = (),
            only_changed: bool = False) -> Comparison:
    columns = select_columns(records, names)
    notes: list[str] = []
    if not names:
        columns, notes = _drop_repeated_workspace(columns)
    specs = sorted({s for r in columns for s in r.grades})
    if spec is not None and spec not in specs:
        raise CompareError(f"no graded spec named '{spec}' (graded: {', '.join(specs) or 'none'})")
    cells = [{s: criterion_cells(g) for s, g in r.grades.items()} for r in columns]
    rows = []
    for name in [spec] if spec else specs:
        ids = dict.fromkeys(cid for column in cells for cid in column.get(name, {}))
        for cid in ids:
            row = [column.get(name, {}).get(cid) for column in cells]
            if only_changed and len({c.text if c else None for c in row}) < 2:
                continue
            rows.append((name, cid, row))
    return Comparison(unique_labels(columns), rows, notes + params_notes(columns, records))


def comparison_markdown(comparison: Comparison) -> str:
    """A pipe table padded to line up in a terminal, then one line per note."""
    header = ["spec", "criterion", *comparison.columns]
    body = [[spec, cid, *(c.text if c else "" for c in row)] for spec, cid, row in comparison.rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    table = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]
    return "\n".join([*table, *([""] if comparison.notes else []), *comparison.notes])
