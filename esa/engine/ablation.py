"""Single-weight ablation: the real held-out damage of zeroing one weight, against what each metric predicted.

A sample of weights (a metric's global top set plus a stratified draw across its score range) is zeroed one at a
time; each costs one pass over the same held-out windows. ``transfer_table`` then asks how well each score ranks
that damage (Spearman ρ with a bootstrap CI over the sampled weights).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import rankdata, spearmanr
from tqdm import tqdm

from esa.engine.batches import Batch, make_batches
from esa.engine.targets import component_of, layer_of

SAMPLE_COLUMNS = ["tensor", "flat_index", "rank", "sample", "stratum"]


# ----------------------------------------------------------------------------------------------------------------
# Which weights


def _flat_scores(scores: dict[str, torch.Tensor]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tensor names in sorted order, their flat-index offsets, and all scores concatenated in that order."""
    names = sorted(scores)
    parts = [scores[n].detach().reshape(-1).to("cpu", torch.float64).numpy() for n in names]
    offsets = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
    values = np.concatenate(parts) if parts else np.zeros(0)
    return names, offsets, values


def _allocate(n: int, capacity: np.ndarray) -> np.ndarray:
    """Split n draws as evenly as possible over bins, never more than a bin holds (surplus to the others)."""
    counts = np.zeros(len(capacity), dtype=np.int64)
    left = n
    while left > 0:
        open_bins = np.flatnonzero(counts < capacity)
        share = np.full(len(open_bins), left // len(open_bins))
        share[: left % len(open_bins)] += 1  # remainder to the higher-score bins
        take = np.minimum(share, capacity[open_bins] - counts[open_bins])
        counts[open_bins] += take
        left -= int(take.sum())
    return counts


def sample_weights(scores: dict[str, torch.Tensor], *, top: int, n_random: int, seed: int,
                   n_bins: int = 10) -> pd.DataFrame:
    """The global top-``top`` weights by these scores, plus ``n_random`` others spread over the score range.

    Ranking is tie-safe and deterministic: score descending, then tensor name, then flat index; NaN scores rank
    last and are never drawn. The others are drawn without replacement from ``n_bins`` strata with log-spaced
    edges in global rank (quantile) below the top set, in equal counts where the strata allow: a plain uniform
    draw would almost never reach between the top set and the bulk, where the ranking matters. Returns one row
    per weight: tensor, flat_index, rank (0 = highest score), sample (top | random), stratum (-1 for top).
    """
    if top < 0 or n_random < 0 or n_bins < 1:
        raise ValueError(f"need top >= 0, n_random >= 0, n_bins >= 1; got {top}, {n_random}, {n_bins}")
    names, offsets, values = _flat_scores(scores)
    order = np.argsort(-values, kind="stable")  # stable: ties stay in (tensor name, flat index) order
    n_finite = int(np.isfinite(values).sum())
    if top + n_random > n_finite:
        raise ValueError(f"asked for {top} + {n_random} weights, only {n_finite} have a finite score")
    ranks = [np.arange(top, dtype=np.int64)]
    strata = [np.full(top, -1, dtype=np.int64)]
    if n_random:
        edges = np.unique(np.round(np.geomspace(max(top, 1), n_finite, n_bins + 1)).astype(np.int64))
        edges[0] = top
        counts = _allocate(n_random, np.diff(edges))
        rng = np.random.default_rng(seed)
        for b, (lo, hi, k) in enumerate(zip(edges[:-1], edges[1:], counts)):
            ranks.append(np.sort(lo + rng.choice(hi - lo, size=int(k), replace=False)))
            strata.append(np.full(int(k), b, dtype=np.int64))
    rank = np.concatenate(ranks)
    flat = order[rank]
    which = np.searchsorted(offsets, flat, side="right") - 1
    return pd.DataFrame({
        "tensor": [names[i] for i in which],
        "flat_index": (flat - offsets[which]).astype(np.int64),
        "rank": rank,
        "sample": np.where(rank < top, "top", "random"),
        "stratum": np.concatenate(strata),
    })


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
    where both are finite, a seeded percentile-bootstrap 95% CI over those weights, n, and ρ on the top set alone
    (rows with ``sample == "top"``)."""
    rows = []
    delta = ablations["delta_nll"].to_numpy(dtype=float)
    delta = np.abs(delta) if absolute else delta
    is_top = (ablations["sample"] == "top").to_numpy() if "sample" in ablations else np.zeros(len(delta), bool)
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
        rows.append({"column": column, "rho": rho, "p_value": p, "ci_low": low, "ci_high": high, "n": int(ok.sum()),
                     "rho_top": rho_top, "n_top": int(top_ok.sum())})
    return pd.DataFrame(rows, columns=["column", "rho", "p_value", "ci_low", "ci_high", "n", "rho_top", "n_top"])


__all__ = ["sample_weights", "gather_scores", "locate", "ablate", "total_nll", "transfer_table"]
