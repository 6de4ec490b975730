"""The "data each seed drew" table every phase page shows: pool, parts, windows and documents per seed, overlap."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from esa.report.tables import df_to_html

DRAWS_NOTE = (
    "Each seed draws its windows from its own part of the pool: the pool's documents are split into as many "
    "parts as the run has seeds (balanced by window count, independent of the seeds), so no two seeds share a "
    "document and their agreement is not inflated by shared text. *Shared docs* is the largest number of "
    "documents any two seeds have in common (0 by construction; a criterion comparing seeds is graded "
    "inconclusive otherwise). A seed whose part holds fewer windows than requested uses all of them (*short*).")


def draws_frame(draws: Mapping[str, Any] | None) -> pd.DataFrame:
    """One row per run: pool windows/documents, parts, windows and documents per seed, shared documents."""
    rows = []
    for run, d in (draws or {}).items():
        seeds = d.get("seeds") or {}
        if not seeds:
            rows.append({"run": run, "pool windows": None, "pool docs": None, "parts": None,
                         "windows per seed": "no record", "docs per seed": None, "shared docs": None,
                         "short": None})
            continue
        n = sorted(r["n_windows"] for r in seeds.values())
        docs = sorted(r["n_docs"] for r in seeds.values())
        span = lambda v: str(v[0]) if v[0] == v[-1] else f"{v[0]}–{v[-1]}"  # noqa: E731
        requested = next(iter(seeds.values())).get("requested")
        rows.append({
            "run": run, "pool windows": d.get("pool_windows"), "pool docs": d.get("pool_docs"),
            "parts": f"{d.get('folds')} by {d.get('unit')}",
            "windows per seed": span(n) + (f" of {requested}" if requested else ""),
            "docs per seed": span(docs), "shared docs": d.get("max_shared_docs"),
            "short": ", ".join(map(str, d.get("shortfall") or [])) or "none",
        })
    return pd.DataFrame(rows)


def draws_table(grades: Mapping[str, Any] | None) -> str:
    frame = draws_frame((grades or {}).get("draws"))
    return df_to_html(frame) if len(frame) else "<p><em>No run of this phase draws seeded windows.</em></p>"


__all__ = ["DRAWS_NOTE", "draws_frame", "draws_table"]
