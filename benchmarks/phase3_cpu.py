"""Phase-3 perturbation cost on CPU: one condition's apply + restore + restore check against one evaluation pass.

A random-weight Llama of ~36M parameters (fp32; or ``--model PATH``, e.g. models/ref-s), a super set of 100
weights per scored matrix (|w| top-100, embeddings and lm_head excluded, as the default spec scores). In one
process, alternating after a warm-up: one evaluation forward pass over 64 x 256 random tokens (batches of 16,
summed NLL) vs a condition's overhead: ``apply`` + ``restore`` + the checksum of the touched tensors, compared
with a reference checksum taken once per run (what ``perturbed(..., reference=...)`` does). Target: < 1% of the
pass. Full-model checksums (every parameter) and the random_k draw are timed separately.

    python benchmarks/phase3_cpu.py [--threads 1] [--write]   # --write records the table in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import clock, machine, report  # noqa: E402

from esa.engine.perturbation.controls import random_k, super_set  # noqa: E402
from esa.engine.perturbation.apply import (BitFlipParams, GaussParams, ZeroParams, apply, checksum,  # noqa: E402
                                verify_restored)
from esa.engine.scoring.select import Selector  # noqa: E402
from esa.engine.models.targets import scored_parameters  # noqa: E402

SECTION = "## Phase 3 perturbation (CPU)"
CONDITIONS = [("zero", ZeroParams()), ("gauss_noise", GaussParams(1.0)), ("bit_flip", BitFlipParams("exponent_msb"))]
METHODS = ["crc32", "sha256", "intsum"]


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a saved model directory (default: models/ref-s if present)")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--intermediate", type=int, default=1536)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seqs", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--k", type=int, default=100, help="weights per matrix in the condition")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    return p.parse_args(argv)


def build(args):
    path = args.model or (str(ROOT / "models" / "ref-s") if (ROOT / "models" / "ref-s").exists() else None)
    if path:
        from esa.engine.models.loading import load_model
        model, _ = load_model(path, "float32", "cpu")
        label = f"`{path}`"
    else:
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                          num_hidden_layers=args.layers, num_attention_heads=args.heads,
                          num_key_value_heads=args.heads, max_position_embeddings=max(512, args.seq_len),
                          tie_word_embeddings=False)
        model = LlamaForCausalLM(cfg).eval()
        label = (f"random-weight Llama, hidden {args.hidden}, {args.layers} layers, intermediate "
                 f"{args.intermediate}, vocab {args.vocab}")
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (args.seqs, args.seq_len), generator=gen)
    return model, ids, label


def eval_pass(model, ids, batch: int) -> float:
    total = 0.0
    with torch.inference_mode():
        for lo in range(0, ids.shape[0], batch):
            x = ids[lo: lo + batch]
            logits = model(input_ids=x, use_cache=False).logits[:, :-1]
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                     reduction="sum").item()
    return total



def condition(model, sel, name, p, reference) -> dict[str, float]:
    """One condition's overhead, split into its parts."""
    t0 = time.perf_counter()
    applied = apply(model, sel, name, p, seed=0)
    t1 = time.perf_counter()
    applied.restore()
    t2 = time.perf_counter()
    verify_restored(reference.subset(applied.tensors), model)
    t3 = time.perf_counter()
    return {"apply": t1 - t0, "restore": t2 - t1, "verify": t3 - t2, "total": t3 - t0}


def rng(xs: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    return (fmt.format(statistics.median(xs) * scale) + " (" + fmt.format(min(xs) * scale) + "-"
            + fmt.format(max(xs) * scale) + ")")



def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    model, ids, label = build(args)
    params = dict(model.named_parameters())
    n_weights = sum(p.numel() for p in model.parameters())
    targets = scored_parameters(model)
    selector = Selector(args.k, "per_layer")
    for t in targets:
        selector.add(t, t.weight().abs())
    sel = super_set(selector.result().assign(metric="magnitude", mode="per_layer"), args.k)
    touched_names = sorted(set(sel["tensor"]))
    touched_numel = sum(params[n].numel() for n in touched_names)
    ref = {m: checksum(model, method=m) for m in METHODS}
    probe = apply(model, sel, "zero", ZeroParams())
    saved_bytes = probe.saved_bytes
    probe.restore()

    # warm-up
    eval_pass(model, ids[: args.batch], args.batch)
    for name, p in CONDITIONS:
        condition(model, sel, name, p, ref["crc32"])
    full = {m: [] for m in METHODS}
    draw = []
    t_eval: list[float] = []
    t_cond: dict[tuple[str, str], list[dict]] = {(n, m): [] for n, _ in CONDITIONS for m in METHODS}
    for rep in range(args.reps):
        def overheads():
            for name, p in CONDITIONS:
                for m in METHODS:
                    t_cond[(name, m)].append(condition(model, sel, name, p, ref[m]))
            for m in METHODS:
                full[m].append(clock(lambda: checksum(model, method=m)))
            draw.append(clock(lambda: random_k(sel, params, rep)))
        if rep % 2 == 0:
            t_eval.append(clock(lambda: eval_pass(model, ids, args.batch)))
            overheads()
        else:
            overheads()
            t_eval.append(clock(lambda: eval_pass(model, ids, args.batch)))
        print(f"rep {rep}: eval {t_eval[-1]:.2f}s | zero+crc32 {t_cond[('zero', 'crc32')][-1]['total'] * 1e3:.1f} ms"
              f" | full sha256 {full['sha256'][-1] * 1e3:.0f} ms", flush=True)
    for m, cs in ref.items():  # nothing was left changed by all those conditions
        verify_restored(cs, model)
    load_after = os.getloadavg()

    def ratio(xs: list[float]) -> str:
        return rng([x / e for x, e in zip(xs, t_eval)], 100, "{:.2f}") + "%"

    rows = []
    for name, _ in CONDITIONS:
        for m in METHODS:
            runs = t_cond[(name, m)]
            total = [r["total"] for r in runs]
            parts = ", ".join(f"{k} {statistics.median([r[k] for r in runs]) * 1e3:.1f}"
                              for k in ("apply", "restore", "verify"))
            rows.append(f"| {name}: apply + restore + {m} of the {len(touched_names)} touched tensors | "
                        f"{statistics.median(total) * 1e3:.1f} ({parts}) | {ratio(total)} | < 1% |")
    for m in METHODS:
        rows.append(f"| {m} of every parameter ({n_weights / 1e6:.1f}M) | {statistics.median(full[m]) * 1e3:.1f} | "
                    f"{ratio(full[m])} | |")
    rows.append(f"| random_k draw ({len(sel)} weights, {len(touched_names)} matrices) | "
                f"{statistics.median(draw) * 1e3:.1f} | {ratio(draw)} | |")

    command = "python benchmarks/phase3_cpu.py " + " ".join(argv)
    tokens = args.seqs * args.seq_len
    lines = [
        SECTION, "",
        f"Machine: {machine()}. Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other processes share these cores; timings are only comparable within one run).",
        f"Command: `{command.strip()}`", "",
        f"Model: {label}: {n_weights / 1e6:.1f}M parameters, fp32. Condition: top-{args.k} |w| per matrix in "
        f"all {len(touched_names)} scored matrices ({len(sel)} weights; embeddings and lm_head not scored), so the "
        f"touched tensors hold {touched_numel / 1e6:.1f}M weights; the state kept for the restore is "
        f"{saved_bytes / 1024:.0f} KiB (flat indices + raw old bits). Evaluation pass: {args.seqs} x {args.seq_len} "
        f"random tokens ({tokens} tokens), batches of {args.batch}, forward only, summed NLL; median "
        f"{statistics.median(t_eval):.2f} s (range {min(t_eval):.2f}-{max(t_eval):.2f}, n={len(t_eval)}).", "",
        "| measurement | median ms (apply, restore, verify) | vs one evaluation pass, median (range) | target |",
        "|---|---|---|---|",
        *rows, "",
        "Each condition applies the perturbation in place (only the touched elements' indices and raw bits are "
        "kept), restores them, checks the restored elements, and compares the touched tensors' checksum with the "
        "reference taken once per run. The engine's default (`perturbed(..., verify=\"touched\", "
        "method=\"auto\", reference=...)`) is crc32 for CPU tensors and intsum (two wrapping int64 sums computed "
        "on the device, no host copy) for accelerator tensors; sha256 of every parameter is the manifest digest, "
        "taken at the start and the end of a run.",
    ]
    report(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
