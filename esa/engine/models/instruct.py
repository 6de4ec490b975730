"""Fine-tune a reference model on instruction pairs (loss on the response only) and measure base vs instruct.

The tokenizer is the base model's, with a chat template added; the architecture and every pre-trained weight
start identical, so the two models differ only by this fine-tune.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from esa.configs import InstructModel
from esa.engine.data.corpus import load_split
from esa.engine.data.instruct_pairs import CHAT_TEMPLATE, Pair, chat_messages, corpus_pairs
from esa.engine.models.reference import HELDOUT_CHUNKS, mean_loss, pack_tokens, train_loop
from esa.stageio import write_json

IGNORE = -100  # label value the causal-LM loss skips
HELDOUT_PAIRS = 128


def encode_pair(tokenizer, pair: Pair) -> tuple[list[int], list[int]]:
    """Token ids of the chat-formatted pair and labels that score only the response (and its end token)."""
    prompt = tokenizer.apply_chat_template(chat_messages(pair)[:1], tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(pair.response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + response_ids, [IGNORE] * len(prompt_ids) + response_ids


def encode_pairs(tokenizer, pairs: list[Pair], seq_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(input_ids, labels, attention_mask) padded to seq_len, and how many pairs were too long to keep."""
    rows, skipped = [], 0
    for pair in pairs:
        ids, labels = encode_pair(tokenizer, pair)
        if len(ids) > seq_len:
            skipped += 1
            continue
        pad = seq_len - len(ids)
        rows.append((ids + [tokenizer.pad_token_id] * pad, labels + [IGNORE] * pad, [1] * len(ids) + [0] * pad))
    if not rows:
        raise ValueError(f"no instruction pair fits in {seq_len} tokens")
    ids, labels, mask = (torch.tensor([row[i] for row in rows]) for i in range(3))
    return ids, labels, mask, skipped


@torch.no_grad()
def response_loss(model, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, batch_size: int) -> float:
    """Mean NLL per response token over the pairs."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(ids), batch_size):
        logits = model(input_ids=ids[i: i + batch_size], attention_mask=mask[i: i + batch_size]).logits.float()
        target = labels[i: i + batch_size, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=IGNORE,
                                                reduction="sum")
        total += nll.item()
        count += int((target != IGNORE).sum())
    return total / max(1, count)


def _measure(model, heldout_pairs, heldout_text, cfg: InstructModel) -> dict:
    loss = response_loss(model, *heldout_pairs, cfg.batch_size)
    text = mean_loss(model, heldout_text, cfg.batch_size)
    return {"response_loss": loss, "response_ppl": math.exp(loss), "text_loss": text, "text_ppl": math.exp(text)}


def finetune(cfg: InstructModel, model, train: tuple[torch.Tensor, ...]) -> list[dict]:
    """The reference recipe (esa.engine.models.reference.train_loop) over the pairs; returns the loss curve."""
    torch.manual_seed(cfg.seed)
    ids, labels, mask = train
    loss_of = lambda idx: model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss  # noqa: E731
    curve = train_loop(model, loss_of, n_items=len(ids), batch_size=cfg.batch_size, steps=cfg.train_steps,
                       learning_rate=cfg.learning_rate, seed=cfg.seed, desc=f"fine-tune {cfg.name}")
    model.eval()
    return curve


def build_instruct(cfg: InstructModel, base_dir: Path, corpus_dir: Path, out_dir: Path) -> dict:
    """Fine-tune the model in base_dir; save model and templated tokenizer to out_dir; return the log."""
    torch.use_deterministic_algorithms(True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    tokenizer.chat_template = CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    train_pairs = corpus_pairs(load_split(corpus_dir, "train"), cfg.max_pairs)
    calibration = load_split(corpus_dir, "calibration")
    heldout_pairs = corpus_pairs(calibration, HELDOUT_PAIRS)
    train = encode_pairs(tokenizer, train_pairs, cfg.seq_len)
    heldout = encode_pairs(tokenizer, heldout_pairs, cfg.seq_len)[:3]
    heldout_text = pack_tokens(tokenizer, [d["text"] for d in calibration], cfg.seq_len)[:HELDOUT_CHUNKS]
    before = _measure(model, heldout, heldout_text, cfg)
    start = time.perf_counter()
    curve = finetune(cfg, model, train[:3])
    wall = time.perf_counter() - start
    after = _measure(model, heldout, heldout_text, cfg)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    log = {
        "model": cfg.name, "base": cfg.base, "config": cfg.params(), "steps": cfg.train_steps, "loss_curve": curve,
        "final_train_loss": curve[-1]["loss"], "wall_time_s": round(wall, 2),
        "train_pairs": len(train[0]), "train_pairs_too_long": train[3],
        "train_docs": len({p.doc_id for p in train_pairs}),
        "heldout_split": "calibration", "heldout_pairs": len(heldout[0]),
        "base_heldout": before, "instruct_heldout": after,
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    write_json(out_dir / "train_log.json", log)
    return log
