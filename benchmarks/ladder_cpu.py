"""Training cost of candidate sizes for the embedded model ladder: one AdamW step of a fresh Llama (batch 8 × 256
tokens, vocabulary 4096, the reference recipe's shapes) per size, and what the whole ladder costs at a fixed token
budget. Times are per step on this machine; the ratio to the ref-s point is what carries to other machines.

    .venv/bin/python benchmarks/ladder_cpu.py [--steps 1300] [--write]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import clock, machine, write_section  # noqa: E402

SECTION = "## Model ladder: training step cost (CPU)"
# (hidden, layers, heads, intermediate); (128, 4, 4, 384) is ref-s.
SIZES = [(32, 2, 2, 96), (48, 2, 2, 128), (64, 3, 4, 192), (96, 4, 4, 256), (128, 4, 4, 384), (160, 6, 4, 448),
         (192, 6, 6, 512)]
REF_S = (128, 4, 4, 384)


def step_seconds(hidden: int, layers: int, heads: int, inter: int, reps: int, warmup: int = 2) -> tuple[int, float]:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=inter, max_position_embeddings=512, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, 4096, (8, 256))

    def step():
        model(input_ids=tokens, labels=tokens).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(warmup):
        step()
    seconds = sorted(clock(step) for _ in range(reps))[reps // 2]  # median: robust to a noisy neighbour
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)
    return non_embedding, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1300, help="training steps per size (ref-s's budget: 1300)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = {size: step_seconds(*size, reps=args.reps) for size in SIZES}
    ref = rows[REF_S][1]
    lines = [SECTION, "", f"Machine: {machine()}; load average {load:.2f} before. `python benchmarks/ladder_cpu.py "
             f"--steps {args.steps}`: median of {args.reps} AdamW steps (batch 8 × 256 tokens) per size.", "",
             "| hidden / layers / intermediate | non-embedding params | s per step | × ref-s | "
             f"{args.steps} steps |", "|---|---|---|---|---|"]
    for (hidden, layers, _, inter), (non_embedding, seconds) in rows.items():
        lines.append(f"| {hidden} / {layers} / {inter} | {non_embedding / 1e3:,.0f}k | {seconds:.3f} | "
                     f"{seconds / ref:.2f} | {seconds * args.steps / 60:.1f} min |")
    six = [size for size in SIZES if size != SIZES[-1]]
    total = sum(rows[size][1] for size in six) * args.steps / 60
    span = rows[six[-1]][0] / rows[six[0]][0]
    lines += ["", f"The six smallest sizes span {span:.0f}× in non-embedding parameters and need {total:.1f} min of "
              f"step time at {args.steps} steps each (fixed tokens: every size sees the same data)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
