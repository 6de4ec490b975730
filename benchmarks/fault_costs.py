"""What fault injection costs on top of the evaluation it is judged by (CPU).

A random-weight Llama (fp32) and random token windows. Per storage format (fp32, bf16, int8), alternating after a
warm-up: (a) one forward pass over the windows (the evaluation every trial needs anyway); (b) one trial at each
rate: draw the bit errors, apply them in the stored format, the same forward pass, restore bit for bit with the
checksum proof. Reported: (b)/(a) per format and rate (target <= 1.5x: the injection must not cost more than half
an evaluation). Then one step of the progressive bit attack (forward+backward, rank every stored bit, try the
shortlist, commit, judge by one forward) against one forward+backward (no target: it is what the search costs).

    python benchmarks/fault_costs.py [--threads 1] [--write]   # --write records the table in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import add_llama_args, clock, machine, random_llama, report  # noqa: E402

from esa.engine.faults.attack import progressive_bit_attack  # noqa: E402
from esa.engine.faults.bit_errors import bit_errors, draw_bit_errors  # noqa: E402
from esa.engine.faults.storage import FORMATS, stored_as  # noqa: E402

SECTION = "## Fault injection vs the evaluation it is judged by (CPU)"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_llama_args(p, hidden=256, layers=4, intermediate=768, heads=4, vocab=4096, seqs=8, seq_len=128)
    p.add_argument("--rates", type=float, nargs="+", default=[1e-6, 1e-4])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--shortlist", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    return p.parse_args(argv)


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    model, windows = random_llama(args)
    model.eval()
    ids = torch.stack(windows) if isinstance(windows, list) else windows

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids).logits.sum().item()

    def forward_backward() -> torch.Tensor:
        return model(input_ids=ids, labels=ids).loss

    rows = []
    for fmt in FORMATS:
        with stored_as(model, fmt) as stored:
            for rate in args.rates:
                generator = torch.Generator().manual_seed(0)

                def trial() -> None:
                    draw = draw_bit_errors(stored, rate, generator)
                    with bit_errors(stored, draw):
                        forward()

                clock(forward), clock(trial)  # warm-up
                t_eval, t_trial = [], []
                for rep in range(args.reps):
                    first, second = (forward, trial) if rep % 2 == 0 else (trial, forward)
                    a, b = clock(first), clock(second)
                    t_eval.append(a if first is forward else b)
                    t_trial.append(b if first is forward else a)
                ratios = [t / e for t, e in zip(t_trial, t_eval)]
                print(f"{fmt} rate {rate:g}: evaluation {statistics.median(t_eval):.3f}s, trial "
                      f"{statistics.median(t_trial):.3f}s, {spread(ratios)}", flush=True)
                rows.append(f"| {fmt} | {rate:g} | {statistics.median(t_eval):.3f} / {statistics.median(t_trial):.3f}"
                            f" | {spread(ratios)} | <= 1.5x |")

    with stored_as(model, "int8") as stored:
        def judge() -> tuple[float, bool]:  # one evaluation forward; never collapses, so the step is timed alone
            forward()
            return 0.0, False

        t_fb = statistics.median(clock(lambda: forward_backward().backward()) for _ in range(args.reps))
        model.zero_grad(set_to_none=True)
        t_step = statistics.median(clock(lambda: progressive_bit_attack(
            stored, forward_backward, judge, budget=1, shortlist=args.shortlist, progress=False))
            for _ in range(args.reps))
    print(f"attack step (int8, shortlist {args.shortlist}): {t_step:.3f}s = {t_step / t_fb:.2f}x a forward+backward")
    load_after = os.getloadavg()

    n_weights = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n
                    and "lm_head" not in n)
    command = "python benchmarks/fault_costs.py " + " ".join(argv)
    lines = [
        SECTION, "",
        f"Machine: {machine()}. Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other processes share these cores; timings are only comparable within one run).",
        f"Command: `{command.strip()}`", "",
        f"Model: random-weight Llama, hidden {args.hidden}, {args.layers} layers, intermediate {args.intermediate},"
        f" vocab {args.vocab}, fp32 compute; about {n_weights / 1e6:.2f}M stored weights in the scored matrices. "
        f"Windows: {args.seqs} x {args.seq_len} random tokens. A trial = draw + apply in the stored format + the "
        "same forward + restore with a checksum of the touched tensors.",
        "",
        "| format | rate | median s (forward / trial) | ratio median (range) | target |",
        "|---|---|---|---|---|",
        *rows, "",
        f"One attack step on int8 storage (shortlist {args.shortlist}, judged by one forward): {t_step:.2f} s, "
        f"{t_step / t_fb:.2f}x one forward+backward ({t_fb:.2f} s).",
    ]
    report(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
