"""Cloze probes of what a model knows, and how zeroing critical weights (or a matched random set) changes it.

``prepare_probes`` keeps the items whose answer is one token in context: the tokens of prompt + answer must be
the prompt's tokens and one more. When that fails and the prompt ends in a space, the space is moved into the
answer and tried again (byte-level tokenizers fold a space into the next word). Every dropped item is kept with
its reason. A model is scored on the last position of each prompt: top-1 correct or not, and the answer's log
probability. ``probe_ablation`` scores the baseline, the top-k set zeroed and several matched random draws zeroed,
one row per (condition, draw, category, item): items are the unit for per-category drops and their intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import pandas as pd
import torch

from esa.engine.interpret.ablate import ablated, complete, matched_random, topk_per_matrix
from esa.engine.interpret.forward import model_device
from esa.engine.interpret.probes import PROBES


@dataclass(frozen=True)
class Probe:
    category: str
    item: int  # position in its category's list
    prompt: str  # the context the model sees (after any space moved into the answer)
    answer: str
    context_ids: tuple[int, ...]
    answer_id: int


@dataclass(frozen=True)
class Dropped:
    category: str
    item: int
    prompt: str
    answer: str
    n_answer_tokens: int  # tokens the answer took in context; 0 when the prompt's tokens changed instead


@dataclass
class ProbeSet:
    probes: list[Probe]
    dropped: list[Dropped]

    def summary(self) -> pd.DataFrame:
        """Per category: items written, kept and dropped."""
        kept = pd.Series([p.category for p in self.probes], dtype=object).value_counts()
        lost = pd.Series([d.category for d in self.dropped], dtype=object).value_counts()
        cats = list(dict.fromkeys([p.category for p in self.probes] + [d.category for d in self.dropped]))
        rows = [{"category": c, "n_items": int(kept.get(c, 0) + lost.get(c, 0)), "n_kept": int(kept.get(c, 0)),
                 "n_dropped": int(lost.get(c, 0))} for c in cats]
        return pd.DataFrame(rows, columns=["category", "n_items", "n_kept", "n_dropped"])


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=True))


def _split(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]] | None:
    """(context tokens, answer tokens) when prompt + answer tokenizes as the prompt's tokens then the answer's."""
    context, full = _encode(tokenizer, prompt), _encode(tokenizer, prompt + answer)
    return (context, full[len(context):]) if full[: len(context)] == context else None


def prepare_probes(tokenizer, categories: Sequence[str] | None = None,
                   probes: Mapping[str, list[tuple[str, str]]] = PROBES) -> ProbeSet:
    """The items of ``categories`` (default: all of ``probes``) whose answer is a single token in context."""
    kept, dropped = [], []
    for category in categories if categories is not None else list(probes):
        for item, (prompt, answer) in enumerate(probes[category]):
            tries = [(prompt, answer)]
            if prompt.endswith(" "):
                tries.append((prompt[:-1], " " + answer))
            best = 0
            for text, ans in tries:
                split = _split(tokenizer, text, ans)
                if split and len(split[1]) == 1 and split[0]:
                    kept.append(Probe(category, item, text, ans, tuple(split[0]), split[1][0]))
                    break
                best = len(split[1]) if split else best
            else:
                dropped.append(Dropped(category, item, prompt, answer, best))
    return ProbeSet(kept, dropped)


@torch.no_grad()
def score_probes(model: torch.nn.Module, probe_set: ProbeSet, *, batch_size: int = 32,
                 pad_id: int = 0) -> pd.DataFrame:
    """Per item: ``predicted_id`` (top-1 at the prompt's last position), ``correct``, the answer's ``logprob`` and
    ``rank`` (0 = top-1; ties counted in the answer's favour). Prompts are batched right-padded with ``pad_id``."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for lo in range(0, len(probe_set.probes), batch_size):
            chunk = probe_set.probes[lo: lo + batch_size]
            width = max(len(p.context_ids) for p in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, p in enumerate(chunk):
                ids[i, : len(p.context_ids)] = torch.tensor(p.context_ids)
                mask[i, : len(p.context_ids)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
            last = torch.tensor([len(p.context_ids) - 1 for p in chunk], device=logits.device)
            logp = torch.log_softmax(logits[torch.arange(len(chunk), device=logits.device), last].double(), -1)
            answer = torch.tensor([p.answer_id for p in chunk], device=logp.device)
            picked = logp.gather(1, answer[:, None])[:, 0]
            top = logp.argmax(-1)
            rank = (logp > picked[:, None]).sum(-1)
            for i, p in enumerate(chunk):
                rows.append({"category": p.category, "item": p.item, "answer_id": p.answer_id,
                             "predicted_id": int(top[i]), "correct": bool(rank[i] == 0),
                             "logprob": float(picked[i]), "rank": int(rank[i])})
    finally:
        model.train(was_training)
    return pd.DataFrame(rows, columns=["category", "item", "answer_id", "predicted_id", "correct", "logprob",
                                       "rank"])


def probe_summary(frame: pd.DataFrame, by: Sequence[str] = ("category",)) -> pd.DataFrame:
    """Top-1 accuracy, mean log probability of the answer and item count per ``by`` group."""
    return (frame.groupby(list(by), sort=True)
            .agg(accuracy=("correct", "mean"), mean_logprob=("logprob", "mean"), n_items=("item", "size"))
            .reset_index())


@dataclass(frozen=True)
class Condition:
    condition: str  # baseline, topk or random
    draw: int  # the random draw (0 for baseline and topk)
    n_zeroed: int


def probe_ablation(model: torch.nn.Module, probe_set: ProbeSet, topk_table: pd.DataFrame,
                   k_per_layer_component: int | Mapping[str, int], *, n_random: int = 3, seed: int = 0,
                   batch_size: int = 32, pad_id: int = 0) -> pd.DataFrame:
    """``score_probes`` for the baseline, the top-k set zeroed and ``n_random`` matched random sets zeroed.

    Draw d's control comes from ``torch.Generator().manual_seed(seed + d)``. Columns: ``Condition``'s fields, then
    ``score_probes``'s. The model is restored bit for bit (checksum-verified) after each ablated condition.
    """
    selection = topk_per_matrix(complete(topk_table, model), k_per_layer_component)
    if not len(selection):
        raise ValueError("the top-k table gives no weight to ablate at this k")
    frames = [(Condition("baseline", 0, 0), score_probes(model, probe_set, batch_size=batch_size, pad_id=pad_id))]
    with ablated(model, selection) as applied:
        frames.append((Condition("topk", 0, applied.n_touched),
                       score_probes(model, probe_set, batch_size=batch_size, pad_id=pad_id)))
    for draw in range(n_random):
        control = matched_random(model, selection, torch.Generator().manual_seed(seed + draw))
        with ablated(model, control) as applied:
            frames.append((Condition("random", draw, applied.n_touched),
                           score_probes(model, probe_set, batch_size=batch_size, pad_id=pad_id)))
    return pd.concat([f.assign(**asdict(c))[[*asdict(c), *f.columns]] for c, f in frames], ignore_index=True)


__all__ = ["Condition", "Dropped", "Probe", "ProbeSet", "prepare_probes", "probe_ablation", "probe_summary",
           "score_probes"]
