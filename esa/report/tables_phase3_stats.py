"""Phase-3 statistics table: super set vs controls per run and level (ratio with CI, paired tests, effect size)."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from esa.report.tables import DASH, TABLE_CLASS, as_number, fmt
from esa.report.charts_phase3 import ALL_TARGETS
from esa.report.tables_phase3 import LEVELLED, STATUS_RANK, _finite

STATS_COLUMNS = ["run", "level", "seed", "pair", "n_docs", "ratio", "ratio_low", "ratio_high", "ratio_status",
                 "diff", "diff_low", "diff_high", "d_z", "wilcoxon_p", "holm_p", "t_p", "power", "n_80",
                 "ratio_note", "test_note"]


def _agg(values: Iterable[Any], how: str, keep_inf: bool = False, strict: bool = False) -> float:
    # keep_inf: an unstable ratio's upper end is +inf and must stay so; strict: any missing value gives NaN
    values = list(values)
    xs = [float(x) for x in map(as_number, values) if x is not None and not math.isnan(x)] if keep_inf \
        else _finite(values)
    if not xs or strict and len(xs) < len(values):
        return math.nan
    return {"median": statistics.median, "max": max, "min": min}[how](xs)


def _count(statuses: Sequence[str], status: str) -> str:
    n = sum(1 for s in statuses if s == status)
    return status if len(statuses) == 1 else f"{status} in {n}/{len(statuses)} seeds"


def _stats_row(run_id: str, level: float, tests: list[dict], per_seed: bool) -> dict[str, Any]:
    ratio, test, power = [t["ratio"] for t in tests], [t["test"] for t in tests], [t["power"] for t in tests]
    ratio_statuses = [r.get("status", "ok") for r in ratio]
    worst = min(ratio_statuses, key=lambda s: STATUS_RANK.get(s, 0))
    # A diverged or undefined ratio has no value worth a median; unstable ones keep theirs, flagged in the note.
    usable = worst not in ("diverged", "undefined")
    test_statuses = [t.get("status", "ok") for t in test]
    bad = min(test_statuses, key=lambda s: STATUS_RANK.get(s, 0))
    return {
        "run": run_id, "level": level, "seed": tests[0]["seed"] if per_seed else None,
        "pair": f"{tests[0]['a']} vs {tests[0]['b']}", "n_docs": _agg((x.get("n") for x in test), "min"),
        "ratio": _agg((x.get("ratio") for x in ratio), "median") if usable else math.nan,
        "ratio_low": _agg((x.get("ci_low") for x in ratio), "min") if usable else math.nan,
        "ratio_high": _agg((x.get("ci_high") for x in ratio), "max", keep_inf=True) if usable else math.nan,
        "ratio_status": worst if usable or len(ratio) == 1 else _count(ratio_statuses, worst),
        "diff": _agg((x.get("mean_diff") for x in test), "median"),
        "diff_low": _agg((x.get("ci_low") for x in test), "min"),
        "diff_high": _agg((x.get("ci_high") for x in test), "max"),
        "d_z": _agg((x.get("cohen_dz") for x in test), "median"),
        "wilcoxon_p": _agg((x.get("wilcoxon_p") for x in test), "max"),
        "holm_p": _agg((t.get("wilcoxon_p_holm") for t in tests), "max"),
        "t_p": _agg((x.get("t_p") for x in test), "max"),
        # A seed with no power (no effect in the tested direction) leaves the pooled power undefined.
        "power": _agg((x.get("power") for x in power), "min", strict=True),
        "n_80": _agg((x.get("n_for_target") for x in power), "max", strict=True),
        "ratio_note": _count(ratio_statuses, "unstable") if worst == "unstable" else "",
        "test_note": _count(test_statuses, bad) if bad != "ok" else "",
    }


def stats_frame(analysis: Mapping[str, Any] | None, runs: Sequence[Any], per_seed: bool = False) -> pd.DataFrame:
    """Paired comparisons per run, level and pair of targets; over seeds unless ``per_seed``.

    Over seeds: ratio and ΔNLL difference are medians with the union of the per-seed CIs; d_z the median; p-values
    the largest; power the smallest; documents needed the largest (the conservative seed, as the criteria read it).
    """
    rows = []
    for run in runs:
        result = ((analysis or {}).get("runs") or {}).get(run.id) or {}
        groups: dict[tuple, list[dict]] = {}
        for t in result.get("tests") or []:
            key = (as_number(t["level"]), t["a"], t["b"]) + ((t["seed"],) if per_seed else ())
            groups.setdefault(key, []).append(t)
        for key in sorted(groups, key=lambda k: (k[0], _pair_rank(k[1], k[2]), *k[3:])):
            rows.append(_stats_row(run.id, key[0], groups[key], per_seed))
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


def _pair_rank(a: str, b: str) -> tuple[int, int]:
    rank = {t: i for i, t in enumerate(ALL_TARGETS)}
    return rank.get(a, 9), rank.get(b, 9)


def _num(value: Any, plain: bool = False) -> str:
    # A true minus sign: the hyphen in "5.4e-11" lets a browser break the number across lines.
    text = fmt(value).replace("-", "−")
    return text if plain else html.escape(text)


def _with_ci(value: Any, low: Any, high: Any, note: str = "", plain: bool = False) -> str:
    text = _num(value, plain)
    lo, hi = as_number(low), as_number(high)
    if text != DASH and lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        ci = f"[{_num(lo, plain)}, {_num(hi, plain)}]"
        text += f" {ci}" if plain else f"<br><small>{ci}</small>"
    if note:
        text += f" ({note})" if plain else f"<br><small><em>{html.escape(note)}</em></small>"
    return text


# Plain column names of the statistics table; the HTML table puts the CI under the name.
_HTML_HEADERS = {"ratio [95% CI]": "ratio<br><small>[95% CI]</small>",
                 "ΔNLL diff [95% CI]": "ΔNLL diff<br><small>[95% CI]</small>"}


def stats_cells(frame: pd.DataFrame, runs: Sequence[Any], plain: bool = False) -> tuple[list[str], list[list[str]]]:
    """(column names, cells) of ``stats_frame``: CIs beside their values, a level column only where a run has a
    strength. Cells are HTML unless ``plain`` (text, e.g. for a paper export)."""
    esc = str if plain else html.escape
    levelled = {run.id for run in runs if run.perturbation in LEVELLED}
    per_seed = frame["seed"].notna().any()
    show_level = bool(levelled & set(frame["run"]))
    headers = (["run"] + (["level"] if show_level else []) + (["seed"] if per_seed else [])
               + ["pair", "documents", "ratio [95% CI]", "ΔNLL diff [95% CI]", "d_z", "Wilcoxon p", "Holm p",
                  "t-test p", "power", "documents for 80%"])
    body = []
    for r in frame.itertuples(index=False):
        ratio = (_with_ci(r.ratio, r.ratio_low, r.ratio_high, r.ratio_note, plain) if r.ratio == r.ratio
                 else esc(r.ratio_status if r.ratio_status != "ok" else DASH))
        # A diverged test has no numbers: its status stands in the ΔNLL cell.
        diff = _with_ci(r.diff, r.diff_low, r.diff_high, "" if r.ratio_status == r.test_note else r.test_note, plain)
        body.append([esc(r.run)] + ([_num(r.level, plain) if r.run in levelled else DASH] if show_level else [])
                    + ([esc(str(r.seed))] if per_seed else [])
                    + [esc(r.pair), _num(r.n_docs, plain), ratio, diff]
                    + [_num(x, plain) for x in (r.d_z, r.wilcoxon_p, r.holm_p, r.t_p, r.power, r.n_80)])
    return headers, body


def stats_table(frame: pd.DataFrame, runs: Sequence[Any]) -> str:
    """``stats_frame`` as HTML (see ``stats_cells``)."""
    headers, rows = stats_cells(frame, runs)
    head = "".join(f"<th>{_HTML_HEADERS.get(h, h)}</th>" for h in headers)
    body = ["<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows]
    return (f'<table class="{TABLE_CLASS}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody>\n</table>")


def holm_sentence(analysis: Mapping[str, Any] | None) -> str | None:
    holm = (analysis or {}).get("holm") or {}
    if not holm:
        return None
    n, left = int(holm.get("n_tests") or 0), len(holm.get("excluded") or [])
    dup = int(holm.get("n_duplicates") or 0)
    text = (f"Holm–Bonferroni runs over the {n} distinct comparisons of the phase that have a Wilcoxon p (every run, "
            f"seed, level and pair of targets; α = {fmt(holm.get('alpha'))})"
            + (f"; {dup} comparison(s) identical to another (the same per-window NLL on both sides, e.g. seeds "
               "sharing the super set and a deterministic control) enter the family once." if dup else ".")
            + " The opposite one-sided tests (b does more harm than a) are corrected the same way.")
    if left:
        text += f" {left} comparison(s) without a p (a diverged or constant condition) are left out of the family."
    return text


# --- Divergence ----------------------------------------------------------------------------------------------
