"""What the benchmark scripts share: a wall clock, the machine's description, and their section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def clock(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} torch threads"


def write_section(section: str, text: str, results: Path = RESULTS) -> None:
    """Replace the `section` heading's part of RESULTS.md with `text` (appended when the heading is new)."""
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    start = old.find(section)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(section))
        new = old[:start] + text + (old[end + 1:] if end >= 0 else "")
    results.write_text(new.rstrip("\n") + "\n")


def add_llama_args(p, *, hidden: int, layers: int, intermediate: int, heads: int, vocab: int, seqs: int,
                   seq_len: int) -> None:
    """The shape of the random-weight Llama and of its random token windows, with each script's defaults."""
    p.add_argument("--hidden", type=int, default=hidden)
    p.add_argument("--layers", type=int, default=layers)
    p.add_argument("--intermediate", type=int, default=intermediate)
    p.add_argument("--heads", type=int, default=heads)
    p.add_argument("--vocab", type=int, default=vocab)
    p.add_argument("--seqs", type=int, default=seqs)
    p.add_argument("--seq-len", type=int, default=seq_len)


def random_llama(args) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """A random-weight fp32 Llama (seed 0) of ``add_llama_args``' shape and its random windows (seed 1); sets
    ``args.threads`` torch threads when given."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      num_key_value_heads=args.heads, max_position_embeddings=max(512, args.seq_len),
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    windows = [torch.randint(0, args.vocab, (args.seq_len,), generator=gen) for _ in range(args.seqs)]
    return model, windows


def select_like_the_stage(result, targets, metrics, k: int) -> None:
    """Stream every matrix's score of each metric through per-layer and global top-k, as stages/score.py does."""
    from esa.engine.scoring.select import Selector

    for metric in metrics:
        selectors = [Selector(k, "per_layer"), Selector(k, "global")]
        for target in targets:
            score = result.score(metric, target.name)
            if score is not None:
                for selector in selectors:
                    selector.add(target, score)
        for selector in selectors:
            selector.result()


def report(section: str, lines: list[str], write: bool) -> None:
    """Print the section's text and, with ``write``, put it in RESULTS.md."""
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if write:
        write_section(section, text)
        print(f"written to {RESULTS.relative_to(RESULTS.parents[1])}")
