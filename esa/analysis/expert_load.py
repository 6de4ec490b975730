"""Does an MoE's sensitivity follow its traffic? Per seed, each (layer, expert) cell's share of its layer's expert
score mass against its share of the layer's routed token slots (the score stage's ``expert_utilisation``), and the
Spearman ρ between the two over all cells; means over seeds with t-intervals (esa.analysis.seed_resampling)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from esa.analysis import seed_resampling as rs


def cells(mass: pd.DataFrame, utilisation: Mapping) -> pd.DataFrame:
    """One seed: layer, expert, sensitivity share (within the layer's experts), utilisation share."""
    experts = mass[mass["expert"].notna() & mass["layer"].notna()]
    table = experts.groupby([experts["layer"].astype(int), experts["expert"].astype(int)])["mass"].sum()
    table = (table / table.groupby(level=0).transform("sum")).rename("sensitivity").reset_index()
    load = [{"layer": int(layer), "expert": e, "utilisation": share}
            for layer, shares in (utilisation.get("layers") or {}).items() for e, share in enumerate(shares)]
    return table.merge(pd.DataFrame(load, columns=["layer", "expert", "utilisation"]), on=["layer", "expert"])


def utilisation_vs_sensitivity(masses: Sequence[pd.DataFrame], loads: Sequence[Mapping | None],
                               confidence: float = rs.CONFIDENCE) -> dict | None:
    """{"cells": [{layer, expert, sensitivity: stat, utilisation: stat}], "spearman": stat}; None without loads."""
    pairs = [(m, u) for m, u in zip(masses, loads) if u and u.get("layers")]
    if not pairs:
        return None
    per_seed = [cells(m, u) for m, u in pairs]
    rhos = [float(stats.spearmanr(c["sensitivity"], c["utilisation"]).statistic) if len(c) > 2 else np.nan
            for c in per_seed]
    draws = rs.model_draws(len(per_seed))  # None with a single seed: no interval
    keys = sorted(set().union(*(zip(c["layer"], c["expert"]) for c in per_seed)))
    out = []
    for layer, expert in keys:
        picked = [c[(c["layer"] == layer) & (c["expert"] == expert)] for c in per_seed]
        out.append({"layer": int(layer), "expert": int(expert),
                    "sensitivity": rs.mean_stat([p["sensitivity"].sum() for p in picked], draws, confidence),
                    "utilisation": rs.mean_stat([p["utilisation"].sum() for p in picked], draws, confidence)})
    return {"cells": out, "spearman": rs.mean_stat(rhos, draws, confidence), "n_seeds": len(per_seed)}
