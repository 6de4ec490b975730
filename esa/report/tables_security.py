"""Phase-5 security tables: collapse rates of random bit errors per storage format, rate and arm (from the
analysis' ``collapse`` entries), and flips to collapse per attack arm and seed (from attacks.parquet). The charts
(esa.report.charts_security) and the display tables share these frames."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

FORMAT_ORDER = ["fp32", "bf16", "int8"]
ARM_LABELS = {"none": "nothing exempt", "critical": "critical set exempt", "random": "matched random set exempt"}
ATTACK_LABELS = {"unrestricted": "attack", "noncritical": "attack off the critical set", "random": "random flips"}


def fault_runs(spec) -> list:
    return [run for run in spec.runs if run.kind == "faults"] if spec is not None else []


def collapse_frame(result: dict[str, Any]) -> pd.DataFrame:
    """One row per (format, rate, arm): collapse rate with its Wilson CI, trials, mean flips, median PPL."""
    frame = pd.DataFrame(result.get("collapse", []))
    if frame.empty:
        return frame
    frame["arm_label"] = frame["arm"].map(ARM_LABELS).fillna(frame["arm"])
    # Formats and arms in a fixed order (unknown ones last), so the table's columns read none → critical → random.
    order = frame.assign(_f=frame["format"].map({f: i for i, f in enumerate(FORMAT_ORDER)}).fillna(len(FORMAT_ORDER)),
                         _a=frame["arm"].map({a: i for i, a in enumerate(ARM_LABELS)}).fillna(len(ARM_LABELS)))
    return order.sort_values(["_f", "rate", "_a"]).drop(columns=["_f", "_a"]).reset_index(drop=True)


def rate_label(rate: float) -> str:
    """A bit-error rate as written in a spec: 1e-06 → 1e-6, 2.5e-05 → 2.5e-5."""
    mantissa, exponent = f"{rate:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _pct(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def collapse_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The display table: a row per (format, rate), a column per arm with 'collapsed/trials (rate [CI])'."""
    rows = []
    for (fmt, rate), group in frame.groupby(["format", "rate"], sort=False):
        row = {"format": fmt, "rate": rate_label(rate), "mean flips": f"{group['mean_flips'].iloc[0]:.3g}"}
        for cell in group.itertuples():
            row[cell.arm_label] = (f"{cell.collapsed}/{cell.trials} ({_pct(cell.collapse_rate)} "
                                   f"[{_pct(cell.ci_low)}, {_pct(cell.ci_high)}])")
        rows.append(row)
    return pd.DataFrame(rows)


def attack_frame(attacks: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """The attack's flips of one run, with the arm's display label and the PPL as a factor of the baseline."""
    if attacks is None or attacks.empty:
        return pd.DataFrame()
    frame = attacks[attacks["run"] == run_id].copy()
    frame["arm_label"] = frame["arm"].map(ATTACK_LABELS).fillna(frame["arm"])
    frame["ppl_factor"] = frame["ppl"] / frame["baseline_ppl"]
    return frame


def attack_table(result: dict[str, Any], attacks: pd.DataFrame) -> pd.DataFrame:
    """Per (format, arm): flips to collapse per seed ('>budget' when censored) and the first flip made."""
    rows = []
    entries = pd.DataFrame(result.get("attacks", []))
    if entries.empty:
        return entries
    formats, arms = ({v: i for i, v in enumerate(order)} for order in (FORMAT_ORDER, ATTACK_LABELS))
    entries = entries.assign(_f=entries["format"].map(formats).fillna(len(formats)),
                             _a=entries["arm"].map(arms).fillna(len(arms))).sort_values(["_f", "_a", "seed"])
    for (fmt, arm), group in entries.groupby(["format", "arm"], sort=False):
        # A censored seed has no count (NaN in the frame, so the others are floats): print whole numbers.
        counts = [f">{e.budget}" if e.censored else str(int(e.flips_to_collapse)) for e in group.itertuples()]
        first = attacks[(attacks["format"] == fmt) & (attacks["arm"] == arm) & (attacks["step"] == 1)]
        targets = ", ".join(sorted({f"{r.key.removeprefix('model.')}[{r.index}] bit {r.bit}"
                                    for r in first.itertuples()})[:3])
        rows.append({"format": fmt, "arm": ATTACK_LABELS.get(arm, arm),
                     "flips to collapse (per seed)": " · ".join(counts), "first flip": targets})
    return pd.DataFrame(rows)
