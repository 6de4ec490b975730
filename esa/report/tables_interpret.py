"""Phase-5 interpretability tables: the super weights the detector found and what zeroing each does (PPL ratio and
attention-sink shift per seed), the massive activation layer by layer, critical weights per attention head against
its attention (Spearman rho per seed), and probe accuracy per category under ablation. Read from the grade stage's
analysis (``runs.<id>``: superweights, head_correlations, probe_drops) and its superweights.parquet,
head_critical.parquet and probe_accuracy.parquet; the charts (esa.report.charts_interpret) share these frames."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from esa.report.tables import DASH, fmt, fmt_ci

SW_CONDITIONS = {"baseline": "weight in place", "zeroed": "weight zeroed"}
PROBE_CONDITIONS = {"baseline": "model as is", "topk": "critical set zeroed", "random": "random set zeroed"}
HEAD_STATS = {"sink_share": "sink share (attention on the first token)", "entropy": "attention entropy (nats)"}


def interpret_runs(spec) -> list:
    return [run for run in spec.runs if run.kind == "interpret"] if spec is not None else []


def _num(x: Any) -> float:
    """A number from the analysis (JSON writes ∞ and NaN as strings); NaN when there is none."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _clean(x: Any) -> float:
    """Round away float noise, so an exact zero difference does not print as -4.44e-17."""
    x = _num(x)
    return round(x, 12) + 0.0 if math.isfinite(x) else x


def weight_label(entry: dict[str, Any]) -> str:
    """A super weight as its matrix and (row, col): layers.1.mlp.down_proj (7, 3)."""
    name = str(entry["param_name"]).removeprefix("model.").removesuffix(".weight")
    return f"{name} ({int(entry['row'])}, {int(entry['col'])})"


def detected(result: dict[str, Any]) -> pd.DataFrame:
    """One row per super weight the detector found (by detector order), with the seeds that found it."""
    rows = pd.DataFrame(result.get("superweights") or [])
    if rows.empty:
        return pd.DataFrame(columns=["weight", "layer", "label", "seeds"])
    rows["label"] = [weight_label(e) for e in rows.to_dict("records")]
    return (rows.groupby(["weight", "layer", "label"], as_index=False, sort=True)
            .agg(seeds=("seed", lambda s: sorted(set(int(v) for v in s)))))


def detector_text(result: dict[str, Any], threshold: float, seeds: list[int],
                  summaries: dict[int, dict[str, Any]]) -> str:
    """What the detector found (or that it found nothing, at which threshold), with its own line per seed."""
    found = detected(result)
    if found.empty:
        text = (f"The data-free detector found **no super weight** in any seed (spike ratio threshold "
                f"{threshold:g} on its fixed prompt): there is no weight to zero, so no activation chart and no "
                "effect table.")
    else:
        names = "; ".join(f"`{r.label}` in layer {r.layer}" + ("" if len(r.seeds) == len(seeds) else
                                                                f" (seeds {', '.join(map(str, r.seeds))} only)")
                          for r in found.itertuples())
        text = (f"The data-free detector (spike ratio threshold {threshold:g} on its fixed prompt) found "
                f"{len(found)} super weight{'s' if len(found) > 1 else ''}: {names}.")
    lines = {str(s.get("detector")) for s in summaries.values() if s.get("detector")}
    if len(lines) == 1:
        text += f" Detector: {lines.pop()}."
    elif lines:
        text += " Detector, per seed: " + "; ".join(
            f"seed {seed}: {s['detector']}" for seed, s in sorted(summaries.items()) if s.get("detector")) + "."
    return text


def activation_frame(superweights: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """Per super weight, layer and condition: the activation ratio at the weight's dimension (|value| / largest
    other |activation|) and the sink share on the detector's prompt, mean over seeds (the prompt and the model are
    the same for every seed); rows a log axis cannot place (ratio ≤ 0 or not finite) are left out."""
    columns = ["weight", "label", "sw_layer", "layer", "condition", "condition_label", "ratio", "sink_share"]
    if superweights is None or superweights.empty or "run" not in superweights:
        return pd.DataFrame(columns=columns)
    rows = superweights[superweights["run"] == run_id]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(label=[weight_label(e) for e in rows[["param_name", "row", "col"]].to_dict("records")],
                       sw_layer=rows["param_name"].str.extract(r"\.(\d+)\.", expand=False).astype(float))
    frame = rows.groupby(["weight", "label", "sw_layer", "layer", "condition"], as_index=False, dropna=False).agg(
        ratio=("ratio", "mean"), sink_share=("sink_share", "mean"))
    frame["condition_label"] = frame["condition"].map(SW_CONDITIONS).fillna(frame["condition"])
    ok = frame["ratio"].map(lambda x: math.isfinite(x) and x > 0)
    return frame.loc[ok, columns].reset_index(drop=True)


def _layers(layers: list[int] | None) -> str:
    if not layers:
        return DASH
    return f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}–{layers[-1]}"


def effect_table(result: dict[str, Any]) -> pd.DataFrame:
    """Per seed and super weight: PPL with it in place → zeroed and their ratio [95% CI], the attention-sink mass
    (mean over the layers after the weight's) in place → zeroed and its shift [95% CI], and what was measured on."""
    rows = []
    for e in sorted(result.get("superweights") or [], key=lambda e: (e["weight"], e["seed"])):
        ratio, shift = _num(e.get("ppl_ratio")), e.get("sink_shift")
        rows.append({
            "super weight": weight_label(e), "seed": int(e["seed"]),
            "PPL in place → zeroed": f"{fmt(_num(e.get('ppl_baseline')))} → {fmt(_num(e.get('ppl_zeroed')))}",
            "PPL ratio [95% CI]": f"{fmt(ratio)} {fmt_ci([_num(e.get('ppl_ci_low')), _num(e.get('ppl_ci_high'))])}"
            if math.isfinite(ratio) else "∞ (diverged)",
            "sink mass in place → zeroed": DASH if shift is None else
            f"{fmt(_num(e.get('sink_baseline')))} → {fmt(_num(e.get('sink_zeroed')))}",
            "sink shift [95% CI]": e.get("reason", DASH) if shift is None else
            f"{fmt(_clean(shift))} {fmt_ci([_clean(e.get('sink_ci_low')), _clean(e.get('sink_ci_high'))])}",
            "sink layers": _layers(e.get("sink_layers")),
            "windows (documents)": f"{e.get('n_windows', DASH)} ({e.get('n_docs', DASH)})"})
    return pd.DataFrame(rows)


def head_frame(heads: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """Long rows, one per (layer, head) and statistic: critical weights in the head's q/k/v/o slices (total) and
    the statistic, each the mean over seeds (a seed reads its own critical set and windows)."""
    columns = ["layer", "head", "total", "stat", "stat_label", "value"]
    if heads is None or heads.empty or "run" not in heads:
        return pd.DataFrame(columns=columns)
    rows = heads[heads["run"] == run_id]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    stats = [s for s in HEAD_STATS if s in rows]
    mean = rows.groupby(["layer", "head"], as_index=False)[["total", *stats]].mean()
    long = mean.melt(id_vars=["layer", "head", "total"], value_vars=stats, var_name="stat", value_name="value")
    long["stat_label"] = long["stat"].map(HEAD_STATS)
    return long[columns]


def correlations(result: dict[str, Any], count: str = "total") -> pd.DataFrame:
    """The analysis' correlation entries for one count column, a row per (statistic, seed)."""
    frame = pd.DataFrame(result.get("head_correlations") or [])
    if frame.empty:
        return frame
    frame = frame[frame["count"] == count].copy()
    frame["_s"] = frame["stat"].map({s: i for i, s in enumerate(HEAD_STATS)}).fillna(len(HEAD_STATS))
    return frame.sort_values(["_s", "seed"]).drop(columns="_s").reset_index(drop=True)


def rho_cell(entry: Any) -> str:
    """rho [95% CI], or the rho alone with why there is no interval."""
    rho, low, high = (_num(getattr(entry, k, None) if not isinstance(entry, dict) else entry.get(k))
                      for k in ("rho", "ci_low", "ci_high"))
    if not math.isfinite(rho):
        return "undefined (constant counts or statistic)"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{fmt(rho)} (no interval: too few layers with differing counts)"
    return f"{fmt(rho)} {fmt_ci([low, high])}"


def correlation_table(result: dict[str, Any]) -> pd.DataFrame:
    """Per attention statistic and seed: Spearman rho of critical weights per head with it [95% CI, layers
    resampled], the heads and layers it rests on."""
    return pd.DataFrame([{"statistic": HEAD_STATS.get(r.stat, r.stat), "critical weights": r.count,
                          "seed": int(r.seed), "Spearman rho [95% CI]": rho_cell(r), "heads": int(r.n_heads),
                          "layers": int(r.n_layers)} for r in correlations(result).itertuples()])


def rho_text(result: dict[str, Any], stat: str) -> str:
    """The rho of one statistic, seed by seed: 'ρ = 0.918 [0.863, 0.964] (seed 1), …'."""
    frame = correlations(result)
    if frame.empty:
        return DASH
    rows = frame[frame["stat"] == stat]
    return "ρ = " + ", ".join(f"{rho_cell(r)} (seed {int(r.seed)})" for r in rows.itertuples()) if len(rows) else DASH


def probe_frame(accuracy: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """Accuracy per category, condition and seed (random: all draws pooled), in condition order."""
    columns = ["category", "condition", "condition_label", "seed", "accuracy", "n"]
    if accuracy is None or accuracy.empty or "run" not in accuracy:
        return pd.DataFrame(columns=columns)
    rows = accuracy[accuracy["run"] == run_id].copy()
    rows["condition_label"] = rows["condition"].map(PROBE_CONDITIONS).fillna(rows["condition"])
    rows["_c"] = rows["condition"].map({c: i for i, c in enumerate(PROBE_CONDITIONS)}).fillna(len(PROBE_CONDITIONS))
    return rows.sort_values(["category", "_c", "seed"])[columns].reset_index(drop=True)


def drop_table(result: dict[str, Any]) -> pd.DataFrame:
    """Per category, measure (top-1 accuracy, answer log-prob in nats) and seed: the value as is, with the critical
    set zeroed, with random sets zeroed (mean over draws), and the drop (random − critical, paired by item)
    [95% CI, items resampled]."""
    rows = []
    order = {"accuracy": 0, "logprob": 1}
    for e in sorted(result.get("probe_drops") or [],
                    key=lambda e: (e["category"], order.get(e.get("measure"), 2), e["seed"])):
        rows.append({"category": e["category"], "measure": e.get("measure", "accuracy"), "seed": int(e["seed"]),
                     "items": int(e["n_items"]),
                     "model as is": fmt(_num(e["baseline"])),
                     "critical set zeroed": fmt(_num(e["topk"])),
                     "random set zeroed": fmt(_num(e["random"])),
                     "drop (random − critical) [95% CI]":
                         f"{fmt(_clean(e['drop']))} {fmt_ci([_clean(e['ci_low']), _clean(e['ci_high'])])}"})
    return pd.DataFrame(rows)
