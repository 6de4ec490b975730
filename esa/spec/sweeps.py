"""Expansion of ``defaults`` and ``sweeps`` into plain runs, remembering where each value came from.

Errors on an expanded run then point at the line that wrote the value: the run, the sweep's matrix entry,
the sweep's own field, or ``defaults``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from esa.spec.errors import SpecError

SourcePath = tuple


def slug(value: Any) -> str:
    """A readable id fragment: hub ids keep their last part, odd characters become '_'."""
    text = str(value).rstrip("/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def expand_runs(raw: dict, file: str, locate, kind_fields: dict[str, set[str]] | None = None
                ) -> tuple[list[dict], dict[tuple, SourcePath], dict[str, list[str]], list[SpecError]]:
    """Return (runs, origin, sweep_members, errors).

    ``origin`` maps (run index, field) to the source path that supplied it; ``sweep_members`` maps sweep ids
    to the ids of the runs they generated. With ``kind_fields`` (kind -> its field names), a default that the
    run's kind lacks but another kind has is left out of that run; a default no kind has stays, to be reported.
    """
    errors: list[SpecError] = []

    def error(path: SourcePath, message: str) -> None:
        errors.append(SpecError(file, *locate(path), path, message))

    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        error(("defaults",), "must be a mapping of run fields")
        defaults = {}
    runs: list[dict] = []
    origin: dict[tuple, SourcePath] = {}
    sweep_members: dict[str, list[str]] = {}

    known = set().union(*kind_fields.values()) if kind_fields else set()

    def applies(key: str, kind) -> bool:
        fields = (kind_fields or {}).get(kind) if isinstance(kind, str) else None
        return fields is None or key in fields or key not in known

    def add(run: dict, sources: dict[str, SourcePath], fallback: SourcePath) -> None:
        index = len(runs)
        kind = run.get("kind", defaults.get("kind"))
        merged = {**{k: v for k, v in defaults.items() if applies(k, kind)}, **run}
        for key in merged:
            origin[(index, key)] = sources.get(key, ("defaults", key) if key in defaults else fallback)
        origin[(index, None)] = fallback
        runs.append(merged)

    raw_runs = raw.get("runs") or []
    if not isinstance(raw_runs, list):
        error(("runs",), "must be a list of runs")
        raw_runs = []
    for i, run in enumerate(raw_runs):
        if not isinstance(run, dict):
            error(("runs", i), "a run must be a mapping")
            continue
        add(run, {key: ("runs", i, key) for key in run}, ("runs", i))

    raw_sweeps = raw.get("sweeps") or []
    if not isinstance(raw_sweeps, list):
        error(("sweeps",), "must be a list of sweeps")
        raw_sweeps = []
    for j, sweep in enumerate(raw_sweeps):
        where = ("sweeps", j)
        if not isinstance(sweep, dict):
            error(where, "a sweep must be a mapping")
            continue
        matrix = sweep.get("matrix")
        if not isinstance(matrix, dict) or not matrix:
            error(where + ("matrix",), "must be a non-empty mapping of field: [values]")
            continue
        bad = [key for key, values in matrix.items() if not isinstance(values, list) or not values]
        for key in bad:
            error(where + ("matrix", key), "must be a non-empty list of values")
        if bad:
            continue
        if "id" in matrix:
            error(where + ("matrix", "id"), "run ids are generated from the matrix; 'id' cannot be swept")
            continue
        base = {key: value for key, value in sweep.items() if key not in ("matrix", "id")}
        prefix = sweep.get("id")
        members: list[str] = []
        for combo in itertools.product(*(list(enumerate(values)) for values in matrix.values())):
            values = {key: value for key, (_, value) in zip(matrix, combo)}
            run_id = "-".join(([slug(prefix)] if prefix else []) + [slug(v) for v in values.values()])
            sources = {key: where + (key,) for key in base}
            sources.update({key: where + ("matrix", key, idx) for key, (idx, _) in zip(matrix, combo)})
            sources["id"] = where + (("id",) if prefix else ("matrix",))
            add({**base, **values, "id": run_id}, sources, where)
            members.append(run_id)
        if prefix is not None:
            sweep_members[str(prefix)] = members
    return runs, origin, sweep_members, errors
