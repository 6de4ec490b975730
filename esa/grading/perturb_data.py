"""What Phase-3 analyses and graders share about a perturb run's tables: how conditions are named in the aligned
per-window NLL, the per-window ΔNLL frame the paired tests read, and which level and steps a criterion grades."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from esa.analysis.paired import Aligned, ClusterBoot
from esa.names import HIERARCHY


@dataclass
class RunData:
    """What the phase-level steps need beyond the JSON: aligned tables and the run's document resamples."""

    al: Aligned
    boot: ClusterBoot | None
    deltas: dict[tuple, np.ndarray] = field(default_factory=dict)  # (seed, level, target) -> resampled ΔPPL


def condition_name(seed: int, level: float, target: str) -> str:
    return f"{seed}|{level!r}|{target}"


def boot_seed(text: str) -> int:
    return zlib.crc32(text.encode())  # stable per name: a rerun reproduces the CIs


def delta_frame(al: Aligned, name: str) -> pd.DataFrame:
    """Per-window ΔNLL per token of one aligned condition against the baseline (compare_paired's input)."""
    with np.errstate(invalid="ignore"):
        delta = (al.nll[name] - al.nll["baseline"]) / al.tokens
    out = pd.DataFrame({"window_id": al.ids.to_numpy(), "doc_id": al.doc_ids[al.docs], "n_tokens": al.tokens,
                        "delta_nll": delta})
    out.attrs["clustered"] = al.clustered
    return out


def criterion_level(level: float | None, result: dict) -> float | None:
    """The level a criterion reads: its own, else the run's first; None when the run has no such level."""
    chosen = level if level is not None else result["levels"][0]
    return chosen if chosen in result["levels"] else None


def hierarchy_steps(targets: set[str]) -> list[tuple[str, str]]:
    """Adjacent steps of the expected damage order among the targets present; random_matched ranks beside
    random_k, so it is one more step against super."""
    chain = [t for t in HIERARCHY if t in targets]
    steps = list(zip(chain, chain[1:]))
    return steps + ([("super", "random_matched")] if {"super", "random_matched"} <= targets else [])
