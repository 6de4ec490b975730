"""Time of each Phase-5 arm on one model, measured side by side (CPU).

A random-weight Llama (fp32), random token windows. Scores for the saved-score methods come from one
``score_model`` call with grad_x_weight + grad_squared + obd + act_mag, made before timing.

Pruning arms: one condition per method (magnitude, wanda, grad_x_weight, grad_squared, obd, random, and magnitude
keeping the top-k grad_x_weight weights of each matrix), each run through ``run_conditions`` as a prune run does:
masks, prune in place, the Phase-1 evaluator (``evaluate_windows``) over the windows, bit-exact restore proved by
checksum against a reference taken once. Each is a ratio to one plain evaluation of the dense model over the same
windows, measured in the same repetition.

Adaptation arms: ``train_arm`` for each arm (full, frozen, fisher, top, random, bottom, and lora when peft imports)
for the same steps on the same batches (``text_loss`` over the windows), as a ratio to the full arm in the same
repetition. ``adapt`` trains a deep copy, so each arm's time includes copying the model and building its masks,
penalty or adapters; the training loop alone is reported beside it.

The order of the measurements rotates (and reverses every other repetition) after a warm-up.

    python benchmarks/phase5_arms.py [--threads 1] [--write]   # --write records the tables in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import statistics
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # adapt's progress bars
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft calling a renamed transformers API

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import add_llama_args, clock, machine, random_llama, report  # noqa: E402

from esa.engine.adaptation.arms import ARMS, ArmPlan, train_arm  # noqa: E402
from esa.engine.adaptation.data import text_loss  # noqa: E402
from esa.engine.adaptation.selection import target_score  # noqa: E402
from esa.engine.data.windows import TokenizedDoc, Window  # noqa: E402
from esa.engine.evaluation.evaluate import EvalWindows, evaluate_windows  # noqa: E402
from esa.engine.models.targets import scored_parameters  # noqa: E402
from esa.engine.perturbation.checksum import checksum  # noqa: E402
from esa.engine.pruning.conditions import conditions, run_conditions  # noqa: E402
from esa.engine.pruning.masks import METHODS  # noqa: E402
from esa.engine.scoring.passes import score_model  # noqa: E402

SAVED_METRICS = ["grad_x_weight", "grad_squared", "obd", "act_mag"]
SECTION = "## Phase 5: time of each arm (CPU)"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_llama_args(p, hidden=256, layers=4, intermediate=768, heads=4, vocab=4096, seqs=8, seq_len=128)
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--group", choices=["row", "matrix"], default="row")
    p.add_argument("--protect-k", type=int, default=10, help="top grad_x_weight weights kept per matrix")
    p.add_argument("--eval-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--fraction", type=float, default=0.02)
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    return p.parse_args(argv)


def saved_scores(model, params, windows) -> dict[str, dict[str, torch.Tensor]]:
    """Metric → parameter name → score, as a score run would have saved them."""
    result = score_model(model, params, windows, SAVED_METRICS, progress=False)
    return {metric: {name: s for name, s in result.scores(metric).items() if s is not None}
            for metric in SAVED_METRICS}


def eval_windows(windows: list[torch.Tensor]) -> EvalWindows:
    """Each random window as a one-window document, every token but its first scored (as the evaluator does)."""
    docs = [TokenizedDoc(f"w{i}", w.tolist(), [1] * len(w)) for i, w in enumerate(windows)]
    n = len(windows[0])
    spans = [Window(i, 0, n, n - 1, n - 1) for i in range(len(windows))]
    return EvalWindows(docs, spans, len(spans), pad_id=0, context=n, stride=n - 1)


def protected(model, scores: dict[str, torch.Tensor], k: int) -> dict[str, list[tuple[int, int]]]:
    """Target key → (row, col) of its top-k weights by the score."""
    out = {}
    for target in scored_parameters(model):
        flat = target_score(target, scores).flatten().topk(k).indices
        cols = target.shape[1]
        out[target.key] = [(int(i) // cols, int(i) % cols) for i in flat]
    return out


def order(items: list, rep: int) -> list:
    """Rotate by the repetition; reverse every other one, so no item always follows the same one."""
    shift = rep % len(items)
    rotated = items[shift:] + items[:shift]
    return rotated[::-1] if rep % 2 else rotated


med = statistics.median


def spread(ratios: list[float]) -> str:
    return f"{med(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    load_before = os.getloadavg()
    model, windows = random_llama(args)
    params = [(t.name, t.parameter) for t in scored_parameters(model)]
    scores = saved_scores(model, params, windows)
    prepared = eval_windows(windows)
    shield = protected(model, scores["grad_x_weight"], args.protect_k)
    reference = checksum(model, method="auto")  # once per run, as the prune stage does

    def evaluate(m):
        return evaluate_windows(m, prepared, batch_size=args.eval_batch, progress=False)[1]

    def prune_one(condition):
        return run_conditions(model, [condition], evaluate=evaluate, saved_scores=lambda metric: scores[metric],
                              seed=0, protected=shield, reference=reference, report=lambda line: None)

    todo = conditions(METHODS, [args.sparsity], [args.group], ["magnitude"])
    try:
        importlib.import_module("peft")
        arms = list(ARMS)
    except ImportError:
        arms = [a for a in ARMS if a != "lora"]
    chunks = torch.stack(windows)
    loss_of = text_loss(chunks)
    plan = ArmPlan(steps=args.steps, batch_size=args.batch, learning_rate=5e-4, seed=0, fraction=args.fraction,
                   group=args.group)

    def train(arm, steps=None):
        used = plan if steps is None else dataclasses.replace(plan, steps=steps)
        return train_arm(model, arm, loss_of, len(chunks), used, scores["grad_x_weight"], scores["grad_squared"])

    # Warm-up: the evaluator, one condition, and the two arms with their own code paths (peft's first wrap).
    evaluate(model)
    prune_one(todo[0])
    for arm in ("full", "lora") if "lora" in arms else ("full",):
        train(arm, steps=1)

    prune_t = {"dense": [], **{c.arm: [] for c in todo}}
    parts = {c.arm: {"masks": [], "apply_restore": [], "evaluate": []} for c in todo}
    for rep in range(args.reps):
        row = {}
        for item in order(["dense"] + todo, rep):
            if item == "dense":
                row["dense"] = clock(lambda: evaluate(model))
            else:
                out = {}
                row[item.arm] = clock(lambda: out.setdefault("r", prune_one(item)))
                for what, values in parts[item.arm].items():
                    values.append(out["r"].seconds[f"{item.arm}/{what}"])
        for key, value in row.items():
            prune_t[key].append(value)
        print(f"prune rep {rep}: dense evaluation {row['dense']:.3f}s; "
              + ", ".join(f"{c.arm} {row[c.arm] / row['dense']:.2f}x" for c in todo), flush=True)

    train_t, loop_t, trained = {a: [] for a in arms}, {a: [] for a in arms}, {}
    for rep in range(args.reps):
        row = {}
        for arm in order(arms, rep):
            out = {}
            row[arm] = clock(lambda: out.setdefault("r", train(arm)))
            train_t[arm].append(row[arm])
            loop_t[arm].append(out["r"].wall_time_s)
            trained[arm] = out["r"].n_trainable
        print(f"adapt rep {rep}: full {row['full']:.2f}s; "
              + ", ".join(f"{a} {row[a] / row['full']:.2f}x" for a in arms if a != "full"), flush=True)
    load_after = os.getloadavg()
    dense = prune_t["dense"]

    n_masked = sum(p.numel() for _, p in params)
    n_all = sum(p.numel() for p in model.parameters())
    n_tokens = args.seqs * (args.seq_len - 1)
    command = "python benchmarks/phase5_arms.py " + " ".join(argv)
    lines = [
        SECTION, "",
        f"Machine: {machine()}. Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other processes share these cores; timings are only comparable within one run).",
        f"Command: `{command.strip()}`", "",
        f"Model: random-weight Llama, hidden {args.hidden}, {args.layers} layers, intermediate {args.intermediate},"
        f" vocab {args.vocab}, fp32: {n_all / 1e6:.2f}M parameters, {len(params)} scored matrices "
        f"({n_masked / 1e6:.2f}M weights, embeddings and head excluded). Windows: {args.seqs} x {args.seq_len} "
        f"random tokens. Saved scores: one grad_x_weight+grad_squared+obd+act_mag pass before timing. "
        f"{args.reps} repetitions after a warm-up, the order rotated (and reversed every other repetition); "
        "ratios are within one repetition.", "",
        f"Pruning: one condition per arm at sparsity {args.sparsity}, {args.group} groups, through `run_conditions` "
        f"(masks, prune in place, `evaluate_windows` over the {n_tokens} predicted tokens in batches of "
        f"{args.eval_batch}, restore, checksum of the pruned tensors against a reference taken once, sparsity "
        f"count), as a ratio to one `evaluate_windows` pass of the dense model (median {med(dense):.3f} s). "
        f"Protected: the top {args.protect_k} grad_x_weight weights of each matrix are never pruned. Saved "
        "scores come from memory (a prune run reads each metric's safetensors once per row of conditions).", "",
        "| pruning arm | median s (masks / apply+restore+verify / evaluate) | vs dense evaluation, median (range) |",
        "|---|---|---|",
    ]
    for c in todo:
        p = parts[c.arm]
        lines.append(f"| {c.arm} | {med(prune_t[c.arm]):.3f} ({med(p['masks']):.3f} / "
                     f"{med(p['apply_restore']):.3f} / {med(p['evaluate']):.3f}) | "
                     f"{spread([t / d for t, d in zip(prune_t[c.arm], dense)])} |")
    extra = {c.arm: med([(t - e) / d for t, e, d in zip(prune_t[c.arm], parts[c.arm]["evaluate"], dense)])
             for c in todo}
    plain = [v for arm, v in extra.items() if arm != "magnitude+protected"]
    lines += ["", f"Beyond its evaluation a condition costs {min(plain):.2f}-{max(plain):.2f} dense evaluations of "
              f"these {n_tokens} tokens ({extra['magnitude+protected']:.2f} protected): a fixed cost per condition, "
              "so a run evaluating more windows spends proportionally less on it. A protected mask ranks each row "
              "by full stable sorts (`_prune_order`) where an unprotected one selects with `kthvalue`."]
    lines += [
        "",
        f"Adaptation: `train_arm` for {args.steps} AdamW steps of batch {args.batch} (`text_loss` over the windows), "
        f"critical fraction {args.fraction} per {args.group} ranked by grad_x_weight, Fisher weights from "
        f"grad_squared, LoRA rank {plan.lora_rank}. `adapt` trains a deep copy of the model, so an arm's time "
        "includes the copy and building its masks, penalty or adapters (and LoRA's merge); the loop column is "
        "`AdaptResult.wall_time_s`, the steps alone.", "",
        "| adaptation arm | weights trained | median s (total / loop) | vs full arm, median (range) |",
        "|---|---|---|---|",
    ]
    for arm in arms:
        ratio = "1" if arm == "full" else spread([t / f for t, f in zip(train_t[arm], train_t["full"])])
        lines.append(f"| {arm} | {trained[arm]:,} | {med(train_t[arm]):.3f} / {med(loop_t[arm]):.3f} | {ratio} |")
    if "lora" not in arms:
        lines.append("\nlora: not measured (peft does not import).")
    few = [a for a in ("top", "random", "bottom") if a in arms]
    loops = [med([t / f for t, f in zip(loop_t[a], loop_t["full"])]) for a in few]
    setup = {a: med([t - w for t, w in zip(train_t[a], loop_t[a])]) for a in arms}
    lines += ["", f"{', '.join(few)} train {trained[few[0]] / trained['full']:.1%} of the weights, yet their loop takes "
              f"{min(loops):.2f}-{max(loops):.2f}x the full arm's: autograd still forms each scored matrix's whole "
              "gradient (masked afterwards) and AdamW keeps moments for whole matrices; only parameters without a "
              "trainable entry (embeddings, head, norms) leave the backward. Outside the loop (copy, masks, penalty, "
              "adapters): " + ", ".join(f"{a} {setup[a]:.3f} s" for a in arms) + "."]
    report(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
