"""Cost of building whole-model pruning masks against one gradient scoring pass (CPU).

A random-weight Llama (fp32), random token windows. Scores for every saved-score method come from one
``score_model`` call with grad_x_weight + grad_squared + obd + act_mag, made before timing. Then, alternating
after a warm-up: (a) one grad_x_weight scoring pass over the windows; (b) the masks of every scored matrix for
all six methods (magnitude, wanda, grad_x_weight, grad_squared, obd, random) at one sparsity, from those
scores, so only mask construction is timed. Reported: (b)/(a) per repetition and its median (target <= 2x).

    python benchmarks/pruning_masks.py [--threads 1] [--write]   # --write records the table in benchmarks/RESULTS.md
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

from esa.engine.models.targets import scored_parameters  # noqa: E402
from esa.engine.pruning.masks import METHODS, SAVED_METRIC  # noqa: E402
from esa.engine.pruning.model_masks import model_masks  # noqa: E402
from esa.engine.scoring.passes import score_model  # noqa: E402

SAVED_METRICS = ["grad_x_weight", "grad_squared", "obd", "act_mag"]
SECTION = "## Pruning masks vs a scoring pass (CPU)"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_llama_args(p, hidden=256, layers=4, intermediate=768, heads=4, vocab=4096, seqs=8, seq_len=128)
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--group", choices=["row", "matrix"], default="row")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    return p.parse_args(argv)


def setup(args):
    model, windows = random_llama(args)
    # The matrices that get masks are the ones scored.
    params = [(t.name, t.parameter) for t in scored_parameters(model)]
    return model, params, windows


def saved_scores(model, params, windows) -> dict[str, dict[str, torch.Tensor]]:
    """Metric → parameter name → score, as a score run would have saved them."""
    result = score_model(model, params, windows, SAVED_METRICS, progress=False)
    return {metric: {name: s for name, s in result.scores(metric).items() if s is not None}
            for metric in SAVED_METRICS}


def all_masks(model, scores, args) -> None:
    for method in METHODS:
        metric = SAVED_METRIC[method]
        model_masks(model, method, args.sparsity, args.group, None if metric is None else scores[metric])


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    load_before = os.getloadavg()
    model, params, windows = setup(args)
    scores = saved_scores(model, params, windows)
    n_masked = sum(p.numel() for _, p in params)
    score_pass = lambda: score_model(model, params, windows, ["grad_x_weight"], progress=False)  # noqa: E731
    masks = lambda: all_masks(model, scores, args)  # noqa: E731

    clock(lambda: score_model(model, params, windows[:2], ["grad_x_weight"], progress=False))  # warm-up
    clock(masks)
    t_pass, t_masks = [], []
    for rep in range(args.reps):
        first, second = (score_pass, masks) if rep % 2 == 0 else (masks, score_pass)  # alternate the order
        a, b = clock(first), clock(second)
        t_pass.append(a if first is score_pass else b)
        t_masks.append(b if first is score_pass else a)
        print(f"rep {rep}: scoring pass {t_pass[-1]:.2f}s, all masks {t_masks[-1]:.2f}s, "
              f"ratio {t_masks[-1] / t_pass[-1]:.2f}x", flush=True)
    load_after = os.getloadavg()
    ratios = [m / p for m, p in zip(t_masks, t_pass)]
    print(f"median ratio (masks / scoring pass): {statistics.median(ratios):.2f}x")

    command = "python benchmarks/pruning_masks.py " + " ".join(argv)
    lines = [
        SECTION, "",
        f"Machine: {machine()}. Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other processes share these cores; timings are only comparable within one run).",
        f"Command: `{command.strip()}`", "",
        f"Model: random-weight Llama, hidden {args.hidden}, {args.layers} layers, intermediate {args.intermediate},"
        f" vocab {args.vocab}, fp32; {len(params)} scored matrices ({n_masked / 1e6:.2f}M weights, embeddings and "
        f"head excluded). Calibration: {args.seqs} x {args.seq_len} random tokens. Masks: sparsity "
        f"{args.sparsity}, {args.group} groups, all six methods ({', '.join(METHODS)}) from scores of one earlier "
        "grad_x_weight+grad_squared+obd+act_mag pass, so only mask construction is timed.",
        "",
        "| measurement | median s (pass / masks) | ratio median (range) | target |",
        "|---|---|---|---|",
        f"| masks for all 6 methods vs one grad_x_weight scoring pass | {statistics.median(t_pass):.2f} / "
        f"{statistics.median(t_masks):.2f} | {spread(ratios)} | <= 2x |",
    ]
    report(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
