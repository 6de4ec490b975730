"""Two perturb runs compared document by document on their shared baseline windows (``effect_difference``).

Per seed both runs share, ΔPPL(run) − ΔPPL(against) and ΔPPL(run) / ΔPPL(against) come with a percentile CI from
one cluster bootstrap of the documents applied to both runs (each resample keeps the pairing), and a paired Wilcoxon
tests the per-document ΔNLL differences. The same document draws serve every seed, as within one run.
"""

from __future__ import annotations

import numpy as np

from esa.analysis.paired import (Aligned, boot_method, cluster_boot, compare_paired, content_key, diff_from,
                                 ratio_from)
from esa.grading.perturb_data import RunData, boot_seed, condition_name, criterion_level, delta_frame


def _same_windows(a: Aligned, b: Aligned) -> bool:
    return (a.ids.equals(b.ids) and np.array_equal(a.tokens, b.tokens)
            and np.array_equal(a.nll["baseline"], b.nll["baseline"]))


def _seed(pair: Aligned, boot, seed: int) -> dict:
    return {"seed": seed, "difference": diff_from(pair, boot, "run", "against").as_dict(),
            "ratio": ratio_from(pair, boot, "run", "against").as_dict(),
            "test": compare_paired(delta_frame(pair, "run"), delta_frame(pair, "against")).as_dict(),
            "test_key": content_key(pair.nll["baseline"], pair.nll["run"], pair.nll["against"])}


def analyze_effect_difference(spec, criterion, results: dict, data: dict[str, RunData], n_boot: int) -> dict:
    """The per-seed comparison of ``criterion.run`` with ``criterion.against`` (``results``: the runs' analyses)."""
    missing = [run for run in (criterion.run, criterion.against) if run not in data]
    if missing:
        return {"missing": [f"the analysis of run '{run}'" for run in missing]}
    first, second = data[criterion.run].al, data[criterion.against].al
    levels = [criterion_level(criterion.level, results[criterion.run]),
              criterion_level(criterion.against_level, results[criterion.against])]
    out = {"run": criterion.run, "against": criterion.against, "target": criterion.target, "levels": levels,
           "baseline": results[criterion.run]["baseline"], "n_docs": first.n_docs, "n_windows": len(first.tokens),
           "clustered": first.clustered, "per_seed": []}
    if None in levels:
        return {**out, "reason": "a level the criterion names is not among its run's levels"}
    if not _same_windows(first, second):
        return {**out, "reason": "the runs' tables are not on the same baseline windows"}
    draws_seed = boot_seed(f"{spec.name}/{criterion.id}")
    boot = cluster_boot(first, n_boot, draws_seed)
    out["bootstrap"] = {"n_boot": n_boot, "seed": draws_seed, "method": boot_method(first.clustered)}
    seeds = [s for s in spec.run(criterion.run).seeds if s in spec.run(criterion.against).seeds]
    for seed in seeds:
        names = (condition_name(seed, levels[0], criterion.target), condition_name(seed, levels[1], criterion.target))
        if names[0] not in first.nll or names[1] not in second.nll:
            out["per_seed"].append({"seed": seed, "missing": f"no {criterion.target} condition at the level in "
                                                              "both runs"})
            continue
        pair = Aligned(first.ids, first.tokens, {"baseline": first.nll["baseline"], "run": first.nll[names[0]],
                                                 "against": second.nll[names[1]]},
                       first.docs, first.doc_ids, first.clustered)
        out["per_seed"].append(_seed(pair, boot, seed))
    return out
