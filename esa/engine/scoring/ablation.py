"""Single-weight ablation: the real held-out damage of zeroing one weight, against what each metric predicted.

A sample of weights (every checked metric's global top set plus a uniform draw over all scored weights) is zeroed
one at a time; each costs one pass over the same held-out windows. ``transfer_table`` then asks how well each score
ranks that damage (Spearman ρ with a bootstrap CI over the sampled weights; ρ on the uniform draw alone beside it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import rankdata, spearmanr
from tqdm import tqdm

from esa.engine.data.batches import Batch, make_batches
from esa.engine.models.targets import component_of, layer_of

SAMPLE_COLUMNS = ["tensor", "flat_index", "rank", "sample", "stratum", "top_of"]


# ----------------------------------------------------------------------------------------------------------------
# Which weights


def _index(rankings: Mapping[str, Mapping[str, torch.Tensor]]) -> tuple[list[str], np.ndarray]:
    """One flat index over every tensor any metric scores: sorted tensor names and their offsets."""
    sizes: dict[str, int] = {}
    for scores in rankings.values():
        for name, score in scores.items():
            sizes.setdefault(name, score.numel())
    names = sorted(sizes)
    offsets = np.concatenate([[0], np.cumsum([sizes[n] for n in names])]).astype(np.int64)
    return names, offsets


def _flat(scores: Mapping[str, torch.Tensor], names: list[str], offsets: np.ndarray) -> np.ndarray:
    """A metric's scores in the common flat order, NaN where it has no score for a tensor."""
    values = np.full(int(offsets[-1]), np.nan)
    for i, name in enumerate(names):
        if scores.get(name) is not None:
            values[offsets[i]: offsets[i + 1]] = scores[name].detach().reshape(-1).to("cpu", torch.float64).numpy()
    return values


def _top(values: np.ndarray, top: int) -> np.ndarray:
    """Flat indices of the ``top`` highest scores, highest first; ties by flat index; NaN never."""
    key = np.where(np.isnan(values), -np.inf, values)
    if top >= len(key):
        picked = np.arange(len(key))
    else:
        cut = np.partition(key, len(key) - top)[len(key) - top] if top else np.inf
        picked = np.flatnonzero(key >= cut)  # every tie at the cut, then ordered and cut to size
    return picked[np.lexsort((picked, -key[picked]))][:top]


def sample_weights(rankings: Mapping[str, Mapping[str, torch.Tensor]], *, top: int, n_random: int, seed: int,
                   weights: Mapping[str, torch.Tensor] | None = None, rank_by: str | None = None) -> pd.DataFrame:
    """Weights to ablate, drawn so that no checked metric is favoured.

    ``rankings``: metric -> its score tensors. The sample is the union of every metric's global top-``top`` (the
    head where each metric claims its sensitive weights), plus ``n_random`` weights drawn uniformly without
    replacement (seeded) from the other weights that some metric scores (a finite score), skipping weights that
    are exactly zero in ``weights`` (zeroing them changes nothing). Sampling by one metric's ranks would
    over-represent the range where that metric is informative and bias every other metric's ρ.

    Ranking is tie-safe: score descending, then tensor name, then flat index; NaN last. Returns one row per weight,
    top set first, each part ordered by rank: tensor, flat_index, rank (0 = highest ``rank_by`` score, default the
    first metric), sample (top | random), stratum (-1 top, 0 the uniform draw), top_of (the metrics whose top set
    holds the weight, comma-separated). ``attrs["sampling"]`` states the rule and its counts.
    """
    if top < 0 or n_random < 0 or not rankings:
        raise ValueError(f"need top >= 0, n_random >= 0 and at least one metric; got {top}, {n_random}, "
                         f"{len(rankings)}")
    rank_by = rank_by or next(iter(rankings))
    if rank_by not in rankings:
        raise ValueError(f"rank_by '{rank_by}' is not one of the metrics given ({', '.join(rankings)})")
    names, offsets = _index(rankings)
    tops: dict[str, np.ndarray] = {}
    scored = np.zeros(int(offsets[-1]), dtype=bool)
    for metric, scores in rankings.items():
        values = _flat(scores, names, offsets)
        n_finite = int(np.isfinite(values).sum())
        if top > n_finite:
            raise ValueError(f"asked for the top {top} of {metric}, only {n_finite} weights have a finite score")
        tops[metric] = _top(values, top)
        scored |= np.isfinite(values)
        if metric == rank_by:
            order = np.argsort(-values, kind="stable")  # stable: ties stay in (tensor name, flat index) order
    head = np.unique(np.concatenate(list(tops.values())))
    pool = scored.copy()
    pool[head] = False
    n_scored_others = int(pool.sum())
    if weights is not None:
        for i, name in enumerate(names):
            w = weights[name].detach().reshape(-1).cpu().numpy()
            pool[offsets[i]: offsets[i + 1]] &= w != 0
    candidates = np.flatnonzero(pool)
    if n_random > len(candidates):
        raise ValueError(f"asked for {n_random} random weights, only {len(candidates)} scored non-zero weights "
                         f"are outside the top sets")
    drawn = candidates[np.random.default_rng(seed).choice(len(candidates), size=n_random, replace=False)]
    flat = np.concatenate([head, drawn]).astype(np.int64)
    positions = np.flatnonzero(np.isin(order, flat))  # the ranks of the sampled weights, ascending
    rank_of = dict(zip(order[positions].tolist(), positions.tolist()))
    rank = np.array([rank_of[f] for f in flat.tolist()], dtype=np.int64)
    is_top = np.arange(len(flat)) < len(head)
    keep = np.lexsort((rank, ~is_top))
    flat, rank, is_top = flat[keep], rank[keep], is_top[keep]
    which = np.searchsorted(offsets, flat, side="right") - 1
    members = {metric: set(index.tolist()) for metric, index in tops.items()}
    frame = pd.DataFrame({
        "tensor": [names[i] for i in which],
        "flat_index": (flat - offsets[which]).astype(np.int64),
        "rank": rank,
        "sample": np.where(is_top, "top", "random"),
        "stratum": np.where(is_top, -1, 0).astype(np.int64),
        "top_of": [",".join(m for m in rankings if f in members[m]) for f in flat.tolist()],
    })
    frame.attrs["sampling"] = {
        "rule": f"union of the global top-{top} of each checked metric, plus {n_random} weights drawn uniformly "
                f"without replacement (seed {seed}) from the other scored weights that are not exactly zero",
        "metrics": list(rankings), "rank_by": rank_by, "top": top, "n_top": len(head),
        "n_random": n_random, "seed": seed, "n_scored": int(scored.sum()), "n_candidates": len(candidates),
        "n_zero_excluded": n_scored_others - len(candidates),
    }
    return frame


def gather_scores(scores: dict[str, torch.Tensor | None], weights: pd.DataFrame) -> np.ndarray:
    """Each sampled weight's score (NaN where a tensor has no score, e.g. act_mag of a non-Linear weight)."""
    out = np.full(len(weights), np.nan)
    for tensor, rows in weights.groupby("tensor").groups.items():
        score = scores.get(tensor)
        if score is not None:
            idx = torch.tensor(weights.loc[rows, "flat_index"].to_numpy(dtype=np.int64))
            out[weights.index.get_indexer(rows)] = score.detach().reshape(-1)[idx].double().cpu().numpy()
    return out


def locate(weights: pd.DataFrame, shapes: dict[str, tuple[int, ...]]) -> pd.DataFrame:
    """layer, component, expert, row, col of each sampled weight (row/col in the stored 2-D (slice) layout)."""
    layers, components, experts, rows, cols = [], [], [], [], []
    for tensor, flat in zip(weights["tensor"], weights["flat_index"]):
        shape = shapes[tensor]
        index = np.unravel_index(int(flat), shape)
        layers.append(layer_of(tensor))
        components.append(component_of(tensor))
        experts.append(int(index[0]) if len(shape) == 3 else None)
        rows.append(int(index[-2]) if len(shape) >= 2 else 0)
        cols.append(int(index[-1]))
    return weights.assign(layer=pd.array(layers, dtype="Int64"), component=components,
                          expert=pd.array(experts, dtype="Int64"), row=rows, col=cols)


# ----------------------------------------------------------------------------------------------------------------
# Damage


def total_nll(model, batches: list[Batch], device: torch.device) -> tuple[float, int]:
    """Summed NLL (float64 accumulation) over every predicted token of the batches, and the token count."""
    total, count = 0.0, 0
    for batch in batches:
        ids = batch.ids.to(device)
        mask = None if batch.mask is None else batch.mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
        targets = ids[:, 1:]
        if mask is not None:
            targets = targets.masked_fill(mask[:, 1:] == 0, -100)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                              ignore_index=-100, reduction="none")
        total += float(nll.double().sum())
        count += batch.n_tokens
    return total, count


def _fingerprint(tensor: torch.Tensor) -> str:
    """Bit pattern digest: equal only when every element's bits are equal (NaN and -0.0 included)."""
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).cpu().numpy()
    return hashlib.sha256(raw.tobytes()).hexdigest()


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


@torch.inference_mode()
def ablate(model, weights: pd.DataFrame, windows: list[torch.Tensor], *, batch_size: int,
           device: torch.device | str = "cpu", pad_id: int = 0, progress: bool = True) -> pd.DataFrame:
    """Zero each listed weight alone, measure mean token NLL on ``windows``, restore it bit for bit.

    Adds columns weight (the original value), base_nll, ablated_nll and delta_nll (ablated - base; mean NLL =
    NLL summed over all predicted tokens of all windows / their number). A non-finite NLL is recorded as is.
    Raises RuntimeError if a weight or a touched tensor is not bit-identical after restoring.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()  # no dropout
    params = dict(model.named_parameters(remove_duplicate=False))
    unknown = sorted(set(weights["tensor"]) - set(params))
    if unknown:
        raise KeyError(f"not parameters of the model: {', '.join(unknown[:3])}")
    # Longest first: padding (and the slower masked attention) is confined to the last batches.
    batches = make_batches(sorted(windows, key=lambda w: -w.numel()), batch_size, pad_id)
    touched = {name: _fingerprint(params[name]) for name in dict.fromkeys(weights["tensor"])}
    try:
        base, n_tokens = total_nll(model, batches, device)
        base_nll = base / n_tokens
        values, ablated = [], []
        rows = zip(weights["tensor"], weights["flat_index"])
        for name, index in tqdm(rows, total=len(weights), desc="ablate", disable=not progress, mininterval=2.0):
            flat = params[name].detach().view(-1)
            index = int(index)
            original = flat[index: index + 1].clone()
            flat[index] = 0
            try:
                nll, _ = total_nll(model, batches, device)
            finally:
                flat[index: index + 1] = original
            if not _same_bits(flat[index: index + 1], original):
                raise RuntimeError(f"{name}[{index}] not restored bit for bit")
            values.append(float(original))
            ablated.append(nll / n_tokens)
    finally:
        model.train(was_training)
    changed = [name for name, digest in touched.items() if _fingerprint(params[name]) != digest]
    if changed:
        raise RuntimeError(f"tensors changed by the ablation sweep: {', '.join(changed[:3])}")
    out = weights.copy()
    out["weight"] = values
    out["base_nll"] = base_nll
    out["ablated_nll"] = ablated
    with np.errstate(invalid="ignore"):
        out["delta_nll"] = out["ablated_nll"] - base_nll
    out.attrs["n_tokens"] = n_tokens
    return out


# ----------------------------------------------------------------------------------------------------------------
# How well each score predicts the damage


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair (average ranks for ties, as scipy); NaN where a row is constant."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / denom


def _rho(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def transfer_table(ablations: pd.DataFrame, score_columns: list[str], *, absolute: bool = False,
                   n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per score column: Spearman ρ against delta_nll (``absolute``: against |delta_nll|) over the sampled weights
    where both are finite, a seeded percentile-bootstrap 95% CI over those weights, n, ρ on the top set alone
    (rows with ``sample == "top"``) and ρ on the uniform draw alone (``sample == "random"``: an estimate for all
    scored weights, free of the top sets' weight)."""
    rows = []
    delta = ablations["delta_nll"].to_numpy(dtype=float)
    delta = np.abs(delta) if absolute else delta
    sample = ablations["sample"].to_numpy() if "sample" in ablations else np.full(len(delta), "")
    is_top, is_random = sample == "top", sample == "random"
    for column in score_columns:
        score = ablations[column].to_numpy(dtype=float)
        ok = np.isfinite(score) & np.isfinite(delta)
        x, y = score[ok], delta[ok]
        rho, p = _rho(x, y)
        low = high = float("nan")
        if np.isfinite(rho) and n_boot > 0:
            pick = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
            boot = _rowwise_spearman(x[pick], y[pick])
            if np.isfinite(boot).any():
                low, high = (float(v) for v in np.nanpercentile(boot, [2.5, 97.5]))
        top_ok = ok & is_top
        rho_top, _ = _rho(score[top_ok], delta[top_ok])
        random_ok = ok & is_random
        rho_random, _ = _rho(score[random_ok], delta[random_ok])
        rows.append({"column": column, "rho": rho, "p_value": p, "ci_low": low, "ci_high": high, "n": int(ok.sum()),
                     "rho_top": rho_top, "n_top": int(top_ok.sum()), "rho_random": rho_random,
                     "n_random": int(random_ok.sum())})
    return pd.DataFrame(rows, columns=["column", "rho", "p_value", "ci_low", "ci_high", "n", "rho_top", "n_top",
                                       "rho_random", "n_random"])


__all__ = ["sample_weights", "gather_scores", "locate", "ablate", "total_nll", "transfer_table"]
