"""The Phase-3 page's known-answer block: which super weight(s) the runs graded by ``ppl_factor`` or
``negligible_effect`` perturbed, as their stages recorded them (analysis.json ``super_weights``)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

KNOWN_ANSWER = ("ppl_factor", "negligible_effect")
COLUMNS = ["run", "seeds", "layer", "matrix", "row", "col", "original value", "score"]


def known_answer_runs(spec: Any) -> list[str]:
    """Runs a known-answer criterion grades, in spec order."""
    return list(dict.fromkeys(c.run for c in getattr(spec, "criteria", []) if c.kind in KNOWN_ANSWER))


def super_weights_frame(analysis: Mapping[str, Any] | None, run_ids: list[str]) -> pd.DataFrame:
    """One row per recorded super weight and run, with the seeds that perturbed it. Numbers are text so that a
    weight's value keeps its digits and an index its form (no thousands separator)."""
    rows: dict[tuple, dict] = {}
    for run_id in run_ids:
        result = ((analysis or {}).get("runs") or {}).get(run_id) or {}
        for entry in result.get("super_weights") or []:
            for w in entry["weights"]:
                key = (run_id, w["tensor"], w.get("expert"), w["row"], w["col"])
                matrix = w["tensor"] + (f" (expert {w['expert']})" if w.get("expert") is not None else "")
                row = rows.setdefault(key, {"run": run_id, "seeds": [], "layer": str(w.get("layer")),
                                            "matrix": matrix, "row": str(w["row"]), "col": str(w["col"]),
                                            "original value": f"{w['value']:.6g}", "score": f"{w['score']:.4g}"})
                row["seeds"].append(str(entry["seed"]))
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    frame["seeds"] = frame["seeds"].map(", ".join)
    return frame


def known_answer_note(frame: pd.DataFrame, analysis: Mapping[str, Any] | None, run_ids: list[str]) -> str:
    """What the table shows, and how many super weights each run had in all when it lists only some."""
    partial = []
    for run_id in run_ids:
        entries = (((analysis or {}).get("runs") or {}).get(run_id) or {}).get("super_weights") or []
        n_super = max((e.get("n_super") or 0 for e in entries), default=0)
        if n_super > (frame["run"] == run_id).sum():
            partial.append(f"`{run_id}` {n_super:,}")
    return ("**Known-answer check.** The super weight(s) of the runs that `ppl_factor` / `negligible_effect` "
            "criteria grade, with their values before any perturbation, as each seed's stage recorded them "
            "(`summary.json`, highest score first)." + (f" Super weights in all: {'; '.join(partial)}." if partial
                                                         else ""))
