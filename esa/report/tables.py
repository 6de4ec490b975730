"""HTML tables for the reports, built from grades.json and summary.json."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Iterable, Mapping
from numbers import Integral
from typing import Any

import pandas as pd

DASH = "—"
_BADGE_ICON = {"pass": "✓", "fail": "✗", "inconclusive": "?"}
TABLE_CLASS = "esa-table"


def as_number(value: Any) -> float | int | None:
    """A number, or None; results JSON writes non-finite floats as the strings 'nan' / 'inf'."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Integral):
        return int(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt(value: Any, digits: int = 3) -> str:
    """Three significant digits (whole numbers from 1000 up), thousands separators, a dash for missing."""
    if isinstance(value, str) and as_number(value) is None:
        return value
    x = as_number(value)
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    if isinstance(x, int):
        return f"{x:,}"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) >= 10**digits and abs(x) < 1e15:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _esc(value: Any) -> str:
    return html.escape(DASH if value is None else str(value))


def badge(status: str) -> str:
    """Status badge; the icon keeps it readable without colour."""
    s = str(status).lower()
    icon = _BADGE_ICON.get(s, "")
    return f'<span class="badge badge-{html.escape(s)}">{icon} {html.escape(s)}</span>'


def fmt_ci(ci: Any) -> str:
    """A two-number CI as [low, high]; a dash when there is none."""
    if not ci or len(ci) != 2:
        return DASH
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _evidence(paths: Iterable[str], link_root: str) -> str:
    links = []
    for path in paths or []:
        href = f"{link_root.rstrip('/')}/{path}" if link_root else path
        # Within a phase's results, the run folder and file name identify the artifact.
        name = path.split("/", 2)[-1] if path.startswith("results/") else path
        shown = html.escape(name).replace("/", "/<wbr>")  # long paths break after a folder, not mid-name
        links.append(f'<a href="{html.escape(href)}" title="{html.escape(path)}">{shown}</a>')
    if len(links) > 2:  # long evidence lists fold away so the table stays readable
        return f"<details><summary>{len(links)} files</summary>{'<br>'.join(links)}</details>"
    return "<br>".join(links) or DASH


def html_table(headers: list[str], rows: list[list[str]], css: str = TABLE_CLASS) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'


def grade_table(grades: Mapping[str, Any], link_root: str = "") -> str:
    """One row per criterion; evidence paths (relative to the project root) become links under link_root."""
    headers = ["criterion", "hyp.", "description", "value", "", "threshold", "CI", "p", "status", "evidence"]
    rows = []
    amended = ((grades.get("lock") or {}).get("changes") or {}).get("criteria") or {}
    for cid, c in grades.get("criteria", {}).items():
        flag = f'<br><small class="amended">{_esc(amended[cid])} after lock</small>' if cid in amended else ""
        flag += '<br><small class="exploratory">exploratory</small>' if c.get("exploratory") else ""
        family = f'<br><small class="family">Holm family {_esc(c["family"])}</small>' if c.get("family") else ""
        rows.append(
            [
                f"<code>{_esc(cid)}</code>{flag}",
                _esc(c.get("hypothesis")),
                _esc(c.get("description")) + _reason(c),
                fmt(c.get("value")),
                _esc(c.get("comparator")),
                fmt(c.get("threshold")),
                fmt_ci(c.get("ci")),
                fmt(c.get("p")) + family,
                badge(c.get("status", "inconclusive")),
                _evidence(c.get("evidence", []), link_root),
            ]
        )
    return html_table(headers, rows, f"{TABLE_CLASS} grade-table")


def _reason(criterion: Mapping[str, Any]) -> str:
    reason = criterion.get("reason")
    return f'<br><small class="reason">{_esc(reason)}</small>' if reason else ""


def status_line(grades: Mapping[str, Any]) -> str:
    """'n pass · n fail · n inconclusive of N criteria' as HTML with badges."""
    counts = grades.get("counts") or {}
    if not counts:
        counts = {}
        for c in grades.get("criteria", {}).values():
            counts[c.get("status")] = counts.get(c.get("status"), 0) + 1
    parts = [f"{badge(s)} {counts.get(s, 0)}" for s in ("pass", "fail", "inconclusive")]
    total = sum(counts.values())
    return f'<p class="status-line">{" · ".join(parts)} &nbsp;— {total} criteria</p>'


def hypotheses_list(spec_dict: Mapping[str, Any]) -> str:
    """HTML list of hypotheses from {'H1': text}, a spec/grades dict with a 'hypotheses' key, or a list of dicts."""
    hyps: Any = spec_dict.get("hypotheses", spec_dict) if isinstance(spec_dict, Mapping) else spec_dict
    if isinstance(hyps, Mapping):
        items = list(hyps.items())
    else:
        items = [(h.get("id"), h) for h in hyps or []]
    lines = []
    for hid, h in items:
        text = (h.get("statement") or h.get("text") or h.get("description")) if isinstance(h, Mapping) else h
        lines.append(f"<li><strong>{_esc(hid)}</strong> — {_esc(text)}</li>")
    return f'<ul class="hypotheses">\n{chr(10).join(lines)}\n</ul>'


def df_to_html(df: pd.DataFrame, index: bool = False) -> str:
    """A plain styled table with the report's number formatting."""
    formatters = {col: fmt for col in df.columns if pd.api.types.is_numeric_dtype(df[col])}
    return df.to_html(
        index=index, classes=TABLE_CLASS, border=0, na_rep=DASH, formatters=formatters, escape=True
    )


def _finite(values: Iterable[Any] | None) -> list[float]:
    xs = (as_number(v) for v in values or [])
    return [float(x) for x in xs if x is not None and math.isfinite(x)]


def _mean(values: Iterable[Any] | None) -> float | None:
    xs = _finite(values)
    return statistics.fmean(xs) if xs else None


def _tokens(values: list[Any] | None) -> str:
    xs = [int(v) for v in _finite(values)]
    if not xs:
        return DASH
    return fmt(xs[0]) if min(xs) == max(xs) else f"{fmt(min(xs))}–{fmt(max(xs))}"


def ppl_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per model/protocol run, aggregated across seeds, as display strings."""
    rows = []
    for r in summary.get("runs", []):
        statuses = r.get("status") or []
        ok = sum(1 for s in statuses if s == "ok")
        expected = len(statuses) + len(r.get("missing") or [])
        cv = as_number(r.get("ppl_cv"))
        rows.append(
            {
                "model": r.get("model"),
                "protocol": r.get("protocol"),
                "seeds": len(r.get("seeds") or []),  # seeds with results
                "PPL (mean ± std)": f"{fmt(r.get('ppl_mean'))} ± {fmt(r.get('ppl_std'))}",
                "CV %": DASH if cv is None else fmt(100 * cv),
                "bits/byte": fmt(_mean(r.get("bits_per_byte"))),
                "top-1 acc.": fmt(_mean(r.get("top1_accuracy"))),
                "tokens": _tokens(r.get("n_tokens")),
                "vocab": fmt(r.get("vocab_size")),
                "status": f"{ok}/{expected} ok" if expected else DASH,
            }
        )
    return pd.DataFrame(rows)


def ppl_table(summary: Mapping[str, Any]) -> str:
    return df_to_html(ppl_frame(summary))
