"""Pieces of the lab-notebook index page: phase overview, research log, experiments, manifests."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from esa.notebook.history import RunRecord
from esa.notebook.log import LogEntry, duration_text, flatten, lock_text
from esa.notebook.manifests import ManifestRecord
from esa.report.provenance import lock_badge
from esa.report.tables import TABLE_CLASS, badge, html_table, status_line

PHASE_STATUS = ("pass", "fail", "inconclusive")


def phase_pages(reports_dir: Path) -> list[str]:
    return sorted(p.stem for p in reports_dir.glob("phase*.qmd"))


def phases_table(root: Path, pages: Sequence[str]) -> str:
    """One row per phase page: its verdict, pre-registration and when it was graded, linking to the page."""
    rows = []
    for phase in pages:
        path = root / "results" / phase / "grades.json"
        grades = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        link = f'<a href="{html.escape(phase)}.html">{html.escape(phase)}</a>'
        if grades is None:
            rows.append([link, "—", "<em>not run yet</em>", "—", "—"])
            continue
        lock = lock_text(grades["lock"]) if grades.get("lock") else "unknown"
        rows.append([link, html.escape(str(grades.get("title", ""))), status_line(grades), lock_badge(lock),
                     html.escape(short_time(grades.get("graded_at")))])
    return html_table(["phase", "title", "verdict", "pre-registration", "graded"], rows, f"{TABLE_CLASS} phases")


def log_html(entries: Sequence[LogEntry]) -> str:
    """The research log, newest first, in the daily-log shape (command, duration, status, results, changes)."""
    status_css = {"Success": "pass", "Partial": "inconclusive", "Failed": "fail"}
    cards = []
    for e in entries:
        counts = " · ".join(f"{badge(s)} {e.counts.get(s, 0)}" for s in PHASE_STATUS)
        results = "".join(f"<li><code>{html.escape(line)}</code></li>" for line in e.key_results)
        changes = "".join(f"<li>{html.escape(change)}</li>" for change in e.changes)
        cards.append(
            f'<article class="log-entry"><h3>{html.escape(short_time(e.when))} — '
            f'<a href="{html.escape(e.phase)}.html">{html.escape(e.phase)}</a> '
            f'<small>({html.escape(e.source)})</small></h3><ul>'
            f"<li><strong>Command:</strong> <code>{html.escape(e.command)}</code></li>"
            f"<li><strong>Duration:</strong> {duration_text(e.duration_s)} of stage compute over {e.stages} stages</li>"
            f'<li><strong>Status:</strong> <span class="badge badge-{status_css.get(e.status, "inconclusive")}">'
            f"{html.escape(e.status)}</span></li>"
            f"<li><strong>Key results:</strong> {counts}; pre-registration: {lock_badge(e.lock_state)}"
            f"<details><summary>{len(e.key_results)} criteria</summary><ul>{results}</ul></details></li>"
            f"<li><strong>Changed since the previous run of this spec:</strong><ul>{changes}</ul></li>"
            "</ul></article>")
    return "\n".join(cards)


def experiments_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """`dvc exp show` as a table: each record's verdict per phase and the params it changed from its baseline."""
    by_rev = {r.rev: r for r in records}
    rows = []
    for r in records:
        if not r.grades:  # a commit without dvc.lock or cached results has nothing to show
            continue
        row: dict[str, Any] = {"run": r.label, "created": short_time(r.timestamp) if r.timestamp else "—"}
        for phase, grades in sorted(r.grades.items()):
            counts = grades.get("counts") or {}
            row[phase] = "/".join(str(counts.get(s, 0)) for s in PHASE_STATUS)
        base = by_rev.get(r.baseline or "")
        if base is not None:
            before, after = flatten(base.params), flatten(r.params)
            row["params changed"] = ", ".join(f"{k}={after[k]}" for k in sorted(after) if before.get(k) != after[k])
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not len(frame):
        return frame
    # Newest first; the workspace (no timestamp) is the newest state of all.
    order = frame["created"].where(frame["run"] != "workspace", "9999")
    return frame.loc[order.sort_values(ascending=False, kind="stable").index].reset_index(drop=True).fillna("—")


def verdict_chart(entries: Sequence[LogEntry]) -> alt.Chart | None:
    """Criteria passed, failed and inconclusive per graded run, newest on top: whether the science moved."""
    rows = [{"run": f"{short_time(e.when)} · {e.source}", "when": e.when or "", "phase": e.phase, "status": s,
             "order": PHASE_STATUS.index(s), "criteria": e.counts.get(s, 0)} for e in entries for s in PHASE_STATUS]
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    colors = alt.Scale(domain=list(PHASE_STATUS), range=["#009E73", "#D55E00", "#999999"])
    return (alt.Chart(frame)
            .mark_bar()
            .encode(y=alt.Y("run:N", sort=alt.SortField("when", order="descending"), title=None,
                            axis=alt.Axis(labelLimit=440)),
                    x=alt.X("criteria:Q", title="criteria", axis=alt.Axis(tickMinStep=1)),
                    color=alt.Color("status:N", scale=colors, sort=list(PHASE_STATUS), title="verdict"),
                    order=alt.Order("order:Q"),
                    tooltip=["run", "phase", "status", "criteria"])
            .properties(width=360, height=alt.Step(20))
            .facet(row=alt.Row("phase:N", title=None, header=alt.Header(labelAngle=0, labelOrient="top", labelAnchor="start", labelFontWeight="bold")))
            .resolve_scale(y="independent")
            .properties(title="Verdicts per graded run (newest first)"))


def short_time(stamp: str | None) -> str:
    """'2026-11-25T21:27:44Z' -> '2026-11-25 21:27'."""
    return (stamp or "undated").replace("T", " ")[:16]


def compute_chart(records: Sequence[ManifestRecord]) -> alt.Chart | None:
    """Stage compute by phase and program, from the manifests: where the time goes."""
    rows = [{"folder": r.run.split("/", 1)[0], "program": r.program, "minutes": (r.duration_s or 0.0) / 60}
            for r in records if r.duration_s]
    if not rows:
        return None
    frame = pd.DataFrame(rows).groupby(["folder", "program"], as_index=False)["minutes"].sum()
    return (alt.Chart(frame, title="Stage compute recorded in the manifests")
            .mark_bar()
            .encode(y=alt.Y("folder:N", title=None), x=alt.X("minutes:Q", stack=True, title="minutes"),
                    color=alt.Color("program:N", title="program"),
                    tooltip=["folder", "program", alt.Tooltip("minutes:Q", format=".1f")])
            .properties(width=520, height=alt.Step(26)))
