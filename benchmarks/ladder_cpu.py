"""Training cost of the embedded model ladder (esa.registry.LADDER) and ref-moe: one AdamW step of each fresh model
(batch 8 × 256 tokens, vocabulary 4096, the reference recipe) measured side by side, and what the whole ladder costs
at its fixed token budget. Times are per step on this machine; the ratio to ref-s is what carries to other
machines. The reference stage adds loading, tokenizer training and logging on top (see RESULTS.md).

    .venv/bin/python benchmarks/ladder_cpu.py [--steps 1300] [--write]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import clock, machine, write_section  # noqa: E402
from esa.configs import MoEReferenceModel  # noqa: E402
from esa.engine.models.reference import active_non_embedding_params, new_model  # noqa: E402
from esa.registry import LADDER, REFERENCE_MODELS  # noqa: E402

SECTION = "## Model ladder: training step cost (CPU)"
MODELS = [*LADDER, "ref-moe"]


class _Vocabulary:
    eos_token_id = 0

    def __len__(self) -> int:
        return 4096


def step_seconds(name: str, reps: int, warmup: int = 2) -> tuple[int, float]:
    torch.manual_seed(0)
    cfg = REFERENCE_MODELS[name]
    model = new_model(cfg, _Vocabulary())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, 4096, (cfg.batch_size, cfg.seq_len))
    extra = {"output_router_logits": True} if isinstance(cfg, MoEReferenceModel) else {}

    def step():
        model(input_ids=tokens, labels=tokens, **extra).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(warmup):
        step()
    seconds = sorted(clock(step) for _ in range(reps))[reps // 2]  # median: robust to a noisy neighbour
    return active_non_embedding_params(cfg, model), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1300, help="training steps per size (ref-s's budget: 1300)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = {name: step_seconds(name, reps=args.reps) for name in MODELS}
    ref = rows["ref-s"][1]
    lines = [SECTION, "", f"Machine: {machine()}; load average {load:.2f} before. `python benchmarks/ladder_cpu.py "
             f"--steps {args.steps}`: median of {args.reps} AdamW steps (batch 8 × 256 tokens) per model.", "",
             "| model | hidden / layers / intermediate | active non-embedding params | s per step | × ref-s | "
             f"{args.steps} steps |", "|---|---|---|---|---|---|"]
    for name, (active, seconds) in rows.items():
        cfg = REFERENCE_MODELS[name]
        shape = f"{cfg.hidden_size} / {cfg.num_layers} / {cfg.intermediate_size}"
        if isinstance(cfg, MoEReferenceModel):
            shape += f" × {cfg.num_experts} (top-{cfg.experts_per_token})"
        lines.append(f"| {name} | {shape} | {active / 1e3:,.0f}k | {seconds:.3f} | {seconds / ref:.2f} | "
                     f"{seconds * args.steps / 60:.1f} min |")
    total = sum(rows[name][1] for name in LADDER) * args.steps / 60
    span = rows[LADDER[-1]][0] / rows[LADDER[0]][0]
    lines += ["", f"The {len(LADDER)}-size ladder spans {span:.0f}× in non-embedding parameters and needs "
              f"{total:.1f} min of step time at {args.steps} steps each (fixed tokens: every size sees the same "
              "data)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
