"""Train a small Llama-architecture reference model, deterministically on CPU, from the corpus train split."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

from esa.engine.data.corpus import load_split
from esa.engine.data.tokenizer import save_tokenizer, train_tokenizer
from esa.configs import MoEReferenceModel, ReferenceModel
from esa.stageio import write_json

WEIGHT_DECAY = 0.1
BETAS = (0.9, 0.95)
GRAD_CLIP = 1.0
MIN_LR_RATIO = 0.1
HELDOUT_CHUNKS = 64


def validate_config(model: ReferenceModel) -> None:
    sizes = {k: getattr(model, k) for k in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                                             "intermediate_size", "max_position_embeddings", "train_steps",
                                             "batch_size", "seq_len")}
    bad = [k for k, v in sizes.items() if not isinstance(v, int) or v < 1]
    if bad:
        raise ValueError(f"{model.name}: {', '.join(bad)} must be positive integers")
    if model.hidden_size % model.num_heads:
        raise ValueError(f"{model.name}: hidden_size {model.hidden_size} not divisible by num_heads {model.num_heads}")
    if model.seq_len > model.max_position_embeddings:
        raise ValueError(f"{model.name}: seq_len {model.seq_len} exceeds max_position_embeddings")
    if model.vocab_size < 257:
        raise ValueError(f"{model.name}: vocab_size must cover the 256 byte symbols plus <|endoftext|>")
    if not model.learning_rate > 0:
        raise ValueError(f"{model.name}: learning_rate must be positive")
    if isinstance(model, MoEReferenceModel) and not 1 <= model.experts_per_token <= model.num_experts:
        raise ValueError(f"{model.name}: experts_per_token must be between 1 and num_experts ({model.num_experts})")


def llama_config(model: ReferenceModel, tokenizer) -> LlamaConfig:
    eos = tokenizer.eos_token_id
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=model.hidden_size,
        intermediate_size=model.intermediate_size,
        num_hidden_layers=model.num_layers,
        num_attention_heads=model.num_heads,
        num_key_value_heads=model.num_heads,
        max_position_embeddings=model.max_position_embeddings,
        rms_norm_eps=1e-5,
        attention_bias=False,
        tie_word_embeddings=False,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )


def mixtral_config(model: MoEReferenceModel, tokenizer) -> MixtralConfig:
    """The Llama config's shapes with a sparse MLP; no sliding window, so attention matches the dense ladder."""
    dense = llama_config(model, tokenizer).to_dict()
    keep = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings", "bos_token_id",
            "eos_token_id", "pad_token_id")
    return MixtralConfig(**{k: dense[k] for k in keep}, num_local_experts=model.num_experts,
                         num_experts_per_tok=model.experts_per_token,
                         router_aux_loss_coef=model.router_aux_loss_coef, sliding_window=None,
                         output_router_logits=False)


def new_model(model_cfg: ReferenceModel, tokenizer) -> torch.nn.Module:
    if isinstance(model_cfg, MoEReferenceModel):
        return MixtralForCausalLM(mixtral_config(model_cfg, tokenizer))
    return LlamaForCausalLM(llama_config(model_cfg, tokenizer))


def pack_tokens(tokenizer, texts: list[str], seq_len: int) -> torch.Tensor:
    """Documents joined with eos and cut into [n_chunks, seq_len]; the ragged tail is dropped."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eos)
    n_chunks = len(ids) // seq_len
    if n_chunks == 0:
        raise ValueError(f"corpus too small: {len(ids)} tokens < seq_len {seq_len}")
    return torch.tensor(ids[: n_chunks * seq_len], dtype=torch.long).view(n_chunks, seq_len)


def lr_lambda(steps: int, warmup: int):
    """Linear warmup, then cosine decay to MIN_LR_RATIO of the peak."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


class ChunkSampler:
    """Seeded epochs over chunk indices: every chunk is seen once per epoch, in a shuffled order."""

    def __init__(self, n_chunks: int, generator: torch.Generator):
        self.n_chunks, self.generator = n_chunks, generator
        self.order: list[int] = []

    def next(self, batch_size: int) -> list[int]:
        out: list[int] = []
        while len(out) < batch_size:
            if not self.order:
                self.order = torch.randperm(self.n_chunks, generator=self.generator).tolist()
            out.append(self.order.pop())
        return out


@torch.no_grad()
def mean_loss(model: torch.nn.Module, chunks: torch.Tensor, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(chunks), batch_size):
        batch = chunks[i: i + batch_size]
        loss = model(input_ids=batch, labels=batch).loss
        n = batch.shape[0] * (batch.shape[1] - 1)
        total += loss.item() * n
        count += n
    return total / max(1, count)


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the token embedding and output head (the count scaling laws use)."""
    return sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)


def active_non_embedding_params(model_cfg: ReferenceModel, model: torch.nn.Module) -> int:
    """Non-embedding parameters one token passes through: a MoE counts experts_per_token of its experts."""
    total = non_embedding_params(model)
    if not isinstance(model_cfg, MoEReferenceModel):
        return total
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    return total - experts + experts * model_cfg.experts_per_token // model_cfg.num_experts


def train_loop(model: torch.nn.Module, loss_of: Callable[[list[int]], torch.Tensor], *, n_items: int,
               batch_size: int, steps: int, learning_rate: float, seed: int, desc: str) -> list[dict]:
    """The recipe every trained model shares: AdamW (no decay on norms), warmup + cosine, gradient clipping, batches
    of item indices drawn by seeded epochs. ``loss_of(indices)`` is the batch loss; returns the logged loss curve."""
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]  # norms: no weight decay
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate, betas=BETAS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, max(1, steps // 20)))
    sampler = ChunkSampler(n_items, torch.Generator().manual_seed(seed))
    log_every = max(1, steps // 50)
    curve, window_losses = [], []
    bar = tqdm(range(steps), desc=desc, mininterval=2.0)
    for step in bar:
        loss = loss_of(sampler.next(batch_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        sched.step()
        window_losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            avg = sum(window_losses) / len(window_losses)
            curve.append({"step": step + 1, "loss": round(avg, 5), "lr": sched.get_last_lr()[0]})
            window_losses = []
            bar.set_postfix(loss=f"{avg:.3f}", refresh=False)
    return curve


def train_model(model_cfg: ReferenceModel, tokenizer, train: torch.Tensor,
                heldout: torch.Tensor | None) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(model_cfg.seed)
    model = new_model(model_cfg, tokenizer)
    # The MoE's load-balancing loss joins the training loss only; the saved config leaves it off, so evaluation
    # losses are plain next-token NLL.
    extra = {"output_router_logits": True} if isinstance(model_cfg, MoEReferenceModel) else {}
    steps = model_cfg.train_steps
    start = time.perf_counter()
    curve = train_loop(model, lambda idx: model(input_ids=train[idx], labels=train[idx], **extra).loss,
                       n_items=len(train), batch_size=model_cfg.batch_size, steps=steps,
                       learning_rate=model_cfg.learning_rate, seed=model_cfg.seed, desc=f"train {model_cfg.name}")
    wall = time.perf_counter() - start
    log = {
        "steps": steps,
        "loss_curve": curve,
        "final_train_loss": curve[-1]["loss"],
        "train_tokens_seen": steps * model_cfg.batch_size * model_cfg.seq_len,
        "train_tokens_available": int(train.numel()),
        "epochs": steps * model_cfg.batch_size / len(train),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_params_non_embedding": non_embedding_params(model),
        "n_params_active_non_embedding": active_non_embedding_params(model_cfg, model),
        "wall_time_s": round(wall, 2),
    }
    if heldout is not None and len(heldout):
        # Calibration text, measured once after training: a sanity check that never feeds back into the weights.
        log["heldout_split"] = "calibration"
        log["heldout_loss"] = mean_loss(model, heldout, model_cfg.batch_size)
        log["heldout_ppl"] = math.exp(log["heldout_loss"])
    model.eval()
    return model, log


def build_reference(model: ReferenceModel, corpus_dir: Path, out_dir: Path) -> dict:
    """Train tokenizer and model from ``corpus_dir``'s train split; save both into out_dir; return the train log."""
    validate_config(model)
    torch.use_deterministic_algorithms(True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = [d["text"] for d in load_split(corpus_dir, "train")]
    t0 = time.perf_counter()
    tokenizer = train_tokenizer(texts, model.vocab_size, model.max_position_embeddings)
    tok_time = time.perf_counter() - t0
    train = pack_tokens(tokenizer, texts, model.seq_len)
    calib = [d["text"] for d in load_split(corpus_dir, "calibration")]
    heldout = pack_tokens(tokenizer, calib, model.seq_len)[:HELDOUT_CHUNKS] if calib else None
    net, log = train_model(model, tokenizer, train, heldout)
    net.save_pretrained(str(out_dir), safe_serialization=True)
    save_tokenizer(tokenizer, out_dir)
    log.update({"model": model.name, "config": model.params(), "tokenizer_train_time_s": round(tok_time, 2),
                "vocab_size": len(tokenizer), "train_docs": len(texts)})
    write_json(out_dir / "train_log.json", log)
    return log
