"""Where a model's score mass lies, compared across architectures: component groups, depth, experts, router.

Input per model: a mapping seed → (tensor_stats, topk) frames of one metric, as a score run writes them. The score
mass of a matrix is mean × (count − n_nonfinite), the sum of its finite scores. Every statistic is computed per
seed and summarised by its mean over seeds with a t-interval over seeds (esa.analysis.seed_resampling);
the base → instruct top-k shift lives in esa.analysis.architecture_shift.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
import pandas as pd

from esa.analysis import seed_resampling as rs
from esa.analysis.architecture_shift import topk_shift

GROUPS = ("attention", "mlp", "router", "other")
SeedFrames = Mapping[Hashable, tuple[pd.DataFrame, pd.DataFrame]]


def is_expert(stats: pd.DataFrame) -> pd.Series:
    return stats["expert"].notna() if "expert" in stats else pd.Series(False, index=stats.index)


def component_group(stats: pd.DataFrame) -> pd.Series:
    """attention (attn_*), mlp (mlp_* and every expert matrix), router, other (embeddings, output head)."""
    comp = stats["component"].astype(str)
    group = np.where(comp.str.startswith("attn_"), "attention",
                     np.where(comp.str.startswith("mlp_") | is_expert(stats), "mlp",
                              np.where(comp == "router", "router", "other")))
    return pd.Series(group, index=stats.index)


def with_mass(stats: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The matrices of one metric with their group, parameter count and score mass (sum of finite scores)."""
    if metric is not None and "metric" in stats:
        stats = stats[stats["metric"] == metric]
    out = stats.copy()
    out["group"] = component_group(out)
    out["params"] = out["count"].astype(float)
    out["mass"] = out["mean"].astype(float).fillna(0.0) * (out["count"] - out["n_nonfinite"]).astype(float)
    return out


def _share_table(frame: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Mass share, parameter share and enrichment (mass share / parameter share) of each cell of ``by``."""
    cells = frame.groupby(by, dropna=True)[["mass", "params"]].sum()
    mass, params = frame["mass"].sum(), frame["params"].sum()
    cells["share"] = cells["mass"] / mass if mass else np.nan
    cells["param_share"] = cells["params"] / params if params else np.nan
    cells["enrichment"] = cells["share"] / cells["param_share"]
    return cells


def _stat_over_seeds(tables: list[pd.DataFrame], column: str, draws, confidence: float) -> dict:
    """For each cell (table index), the per-seed column summarised as mean with CI; a missing cell counts 0."""
    index = sorted(set().union(*(t.index for t in tables)), key=str)
    out = {}
    for cell in index:
        per_seed = [t[column].get(cell, 0.0) for t in tables]
        out[cell] = rs.mean_stat(per_seed, draws, confidence)
    return out


def group_table(frame: pd.DataFrame) -> pd.DataFrame:
    """_share_table by group, every group present; a group without parameters has no enrichment (NaN)."""
    table = _share_table(frame, "group").reindex(GROUPS, fill_value=0.0)
    table["enrichment"] = table["share"] / table["param_share"].where(table["param_share"] > 0)
    return table


def group_shares(frames: list[pd.DataFrame], draws, confidence: float) -> dict:
    """{group: {param_share, share, enrichment}} for the four groups; share/enrichment are {mean, ci, per_seed}."""
    tables = [group_table(f) for f in frames]
    share = _stat_over_seeds(tables, "share", draws, confidence)
    enrich = _stat_over_seeds(tables, "enrichment", draws, confidence)
    return {g: {"param_share": rs.number(tables[0].loc[g, "param_share"]), "share": share[g],
                "enrichment": enrich[g]} for g in GROUPS}


def layer_progression(frames: list[pd.DataFrame], draws, confidence: float) -> list[dict]:
    """Per layer: depth = (layer + 0.5) / n_layers, parameter share, mass share and enrichment among the layered
    matrices (embeddings and the head have no layer), each a mean over seeds with CI."""
    layered = [f[f["layer"].notna()].assign(layer=lambda d: d["layer"].astype(int)) for f in frames]
    tables = [_share_table(f, "layer") for f in layered]
    layers = sorted(set().union(*(t.index for t in tables)))
    if not layers:
        return []
    n_layers = max(layers) + 1
    share = _stat_over_seeds(tables, "share", draws, confidence)
    enrich = _stat_over_seeds(tables, "enrichment", draws, confidence)
    return [{"layer": int(layer), "depth": (layer + 0.5) / n_layers,
             "param_share": rs.number(tables[0]["param_share"].get(layer, np.nan)),
             "share": share[layer], "enrichment": enrich[layer]} for layer in layers]


def _expert_shares(experts: pd.DataFrame) -> pd.Series:
    mass = experts.groupby("expert")["mass"].sum()
    return mass / mass.sum() if mass.sum() else mass * np.nan


def _max_min_ratio(shares: pd.Series) -> float:
    return float(shares.max() / shares.min()) if len(shares) and shares.min() > 0 else float("nan")


def moe_balance(frames: list[pd.DataFrame], draws, confidence: float) -> dict | None:
    """Per-expert share of the expert matrices' mass (overall and per layer), the max/min expert share ratio (per
    layer, and its mean over layers), and router sensitivity = router mass share / router parameter share. None for a model without experts."""
    experts = [f[is_expert(f)].assign(expert=lambda d: d["expert"].astype(int)) for f in frames]
    if not all(len(e) for e in experts):
        return None
    overall = [_expert_shares(e).to_frame("share") for e in experts]
    ids = sorted(set().union(*(t.index for t in overall)))
    share = _stat_over_seeds(overall, "share", draws, confidence)
    per_layer, layer_ratios = [], []
    for layer in sorted(set(experts[0]["layer"].dropna().astype(int))):
        tables = [_expert_shares(e[e["layer"] == layer]).to_frame("share") for e in experts]
        layer_share = _stat_over_seeds(tables, "share", draws, confidence)
        ratios = [_max_min_ratio(t["share"]) for t in tables]
        layer_ratios.append(ratios)
        per_layer.append({"layer": int(layer), "experts": [{"expert": int(x), "share": layer_share[x]} for x in ids],
                          "max_min_ratio": rs.mean_stat(ratios, draws, confidence)})
    # Expert k of one layer has nothing to do with expert k of another, so balance is judged within layers: the
    # overall ratio is each seed's mean over layers of the layer's largest / smallest expert share.
    per_seed_ratio = np.nanmean(np.array(layer_ratios, dtype=float), axis=0) if layer_ratios else []
    router = [group_table(f).loc["router"] for f in frames]
    return {"n_experts": len(ids),
            "experts": [{"expert": int(x), "share": share[x]} for x in ids],
            "max_min_ratio": rs.mean_stat(list(per_seed_ratio), draws, confidence),
            "per_layer": per_layer,
            "router": {"param_share": rs.number(router[0]["param_share"]),
                       "share": rs.mean_stat([r["share"] for r in router], draws, confidence),
                       "sensitivity": rs.mean_stat([r["enrichment"] for r in router], draws, confidence)}}


def model_summary(by_seed: SeedFrames, metric: str | None = None, draws: int = rs.DRAWS,
                  rng_seed: int = rs.RNG_SEED, confidence: float = rs.CONFIDENCE) -> dict:
    """Group shares, layer progression and (MoE only) expert balance of one model, seeds in sorted order."""
    seeds = sorted(by_seed, key=str)
    frames = [with_mass(by_seed[s][0], metric) for s in seeds]
    seed_idx = rs.model_draws(len(seeds), draws, rng_seed)
    layered = pd.concat([f["layer"] for f in frames]).dropna()
    return {"seeds": [str(s) for s in seeds], "n_seeds": len(seeds),
            "n_layers": int(layered.max()) + 1 if len(layered) else 0,
            "groups": group_shares(frames, seed_idx, confidence),
            "layers": layer_progression(frames, seed_idx, confidence),
            "moe": moe_balance(frames, seed_idx, confidence)}


def share_difference(a: dict, b: dict, group: str, draws: int = rs.DRAWS, rng_seed: int = rs.RNG_SEED,
                     confidence: float = rs.CONFIDENCE) -> dict:
    """Group share of model a minus that of model b (two model summaries): {value, ci, permutation}. CI: each
    model's seeds resampled independently; permutation: over the seed labels (see seed_resampling.permutation_p)."""
    va, vb = a["groups"][group]["share"]["per_seed"], b["groups"][group]["share"]["per_seed"]
    va, vb = [v for v in va if v is not None], [v for v in vb if v is not None]
    if not va or not vb:
        return {"value": None, "ci": None, "permutation": None, "n_seeds": [len(va), len(vb)]}
    return {"value": float(np.mean(va) - np.mean(vb)), "ci": rs.difference_ci(va, vb, draws, rng_seed, confidence),
            "permutation": rs.permutation_p(va, vb, rng_seed=rng_seed), "n_seeds": [len(va), len(vb)]}


def reversed_difference(d: dict) -> dict:
    """The same comparison read as b − a: value and CI negated, the one-sided p-values swapped."""
    perm = d["permutation"] and {**d["permutation"], "p_greater": d["permutation"]["p_less"],
                                 "p_less": d["permutation"]["p_greater"]}
    return {"value": None if d["value"] is None else -d["value"],
            "ci": None if d["ci"] is None else [-d["ci"][1], -d["ci"][0]],
            "permutation": perm, "n_seeds": d["n_seeds"][::-1]}


def analyze_architecture(models: Mapping[str, SeedFrames], *, metric: str | None = None,
                         shifts: Mapping[str, tuple[str, str]] | None = None, k: int | None = None,
                         draws: int = rs.DRAWS, rng_seed: int = rs.RNG_SEED,
                         confidence: float = rs.CONFIDENCE) -> dict:
    """The architecture comparison of one metric: every model's summary, every pairwise group-share difference
    (differences[a][b][group] = a − b), and each named base → instruct top-k shift (shifts: name → (base,
    instruct), per-matrix top-k of size k, default the stored k)."""
    names = list(models)
    summaries = {name: model_summary(models[name], metric, draws, rng_seed, confidence) for name in names}
    differences: dict = {name: {} for name in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            forward = {g: share_difference(summaries[a], summaries[b], g, draws, rng_seed, confidence)
                       for g in GROUPS}
            differences[a][b] = forward
            differences[b][a] = {g: reversed_difference(d) for g, d in forward.items()}
    shift_out = {name: topk_shift(models[base], models[instruct], k=k, metric=metric, draws=draws,
                                  rng_seed=rng_seed, confidence=confidence) | {"base": base, "instruct": instruct}
                 for name, (base, instruct) in (shifts or {}).items()}
    return {"metric": metric, "bootstrap": rs.settings(draws, rng_seed, confidence), "groups": list(GROUPS),
            "models": summaries, "differences": differences, "shifts": shift_out}
