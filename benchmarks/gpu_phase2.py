"""Phase-2 scoring on a Llama-3.2-1B- or Llama-3.1-8B-shaped model with random bf16 weights, on one GPU.

Times, in one process and alternating after a warm-up: the gradient-metrics pass (grad_x_weight, grad_squared,
obd, act_mag in one sweep) against a bare fwd+bwd over the same tokens and microbatches; one Hutchinson probe on
a subset of windows against a bare fwd+bwd on that subset; top-k per matrix from the lazy scores; then a score
stage's work for three seeds (gradient pass + per-layer and global top-k of the default targets, no embeddings or
head), which is what `dvc repro` of a three-seed score run spends beyond loading. Reports peak allocated GPU
memory beside each. Each section that runs out of memory is reported as OOM and the rest go on.

    python benchmarks/gpu_phase2.py [--shape 1b]    # the 8B shape on cuda (exits with a message without a GPU)
    python benchmarks/gpu_phase2.py --dry-run       # a tiny shape on CPU: checks the script end to end
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import select_like_the_stage  # noqa: E402

from esa.engine.scoring.gradient_pass import bare_fwd_bwd  # noqa: E402
from esa.engine.scoring.passes import score_model  # noqa: E402

GRAD_METRICS = ["grad_x_weight", "grad_squared", "obd", "act_mag"]
LLAMA_8B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)
LLAMA_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=8192, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                tie_word_embeddings=True)
SHAPES = {"1b": LLAMA_1B, "8b": LLAMA_8B}
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=512, max_position_embeddings=256)
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass
class Row:
    section: str
    seconds: list[float] = field(default_factory=list)
    peak_gb: float = float("nan")
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="tiny shape on CPU, few tokens")
    p.add_argument("--shape", choices=list(SHAPES), default="8b")
    p.add_argument("--stage-seeds", type=int, default=3, help="seeds of the stage-work row (0 skips it)")
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--microbatch", type=int, default=4)
    p.add_argument("--reps", type=int, default=2, help="alternating repetitions of each timed pair")
    p.add_argument("--hutchinson-windows", type=int, default=4)
    p.add_argument("--hutchinson-microbatch", type=int, default=1)
    p.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    p.add_argument("--accum-dtype", default="bfloat16", choices=list(DTYPES),
                   help="gradient accumulators (two copies of the model: fp32 ones do not fit beside an 8B model)")
    p.add_argument("--topk", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.dry_run:
        args.windows, args.seq_len, args.microbatch = min(args.windows, 6), min(args.seq_len, 32), 2
        args.reps, args.hutchinson_windows = 1, 2
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def build_model(shape: dict, dtype: torch.dtype, device: torch.device, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**shape, tie_word_embeddings=False)
    # Built directly on the device in the target dtype: no download, no fp32 copy of 8B weights.
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    return model.eval()


def timed(device: torch.device, fn) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def run_section(row: Row, device: torch.device, fn) -> object:
    """Time fn once into row; an out-of-memory error is recorded, not raised."""
    reset_peak(device)
    try:
        seconds, out = timed(device, fn)
    except torch.OutOfMemoryError as err:
        row.note = "OOM: " + str(err).split("\n")[0][:120]
        reset_peak(device)
        return None
    row.seconds.append(seconds)
    row.peak_gb = max(peak_gb(device), row.peak_gb) if row.peak_gb == row.peak_gb else peak_gb(device)
    return out


def log(row: Row) -> None:
    last = f"{row.seconds[-1]:.3f} s" if row.seconds else "-"
    print(f"[{row.section}] {last}, peak {row.peak_gb:.1f} GB {row.note}", flush=True)


def topk_per_matrix(result, metric: str, k: int) -> int:
    picked = 0
    for _, score in result.iter_scores(metric):
        if score is not None:
            picked += torch.topk(score.reshape(-1), min(k, score.numel())).indices.numel()
    return picked


def stage_work(model, windows, args, kw) -> None:
    """What a score stage computes per seed once the model is loaded: the sweep over its own windows (a seed's
    document-disjoint draw, here a rotation of the random windows) and the streaming selectors."""
    from esa.engine.models.targets import scored_parameters

    targets = scored_parameters(model)
    params = list({t.name: t.parameter for t in targets}.items())
    for seed in range(args.stage_seeds):
        shift = seed * len(windows) // max(args.stage_seeds, 1)
        result = score_model(model, params, windows[shift:] + windows[:shift], GRAD_METRICS, **dict(kw, seed=seed))
        select_like_the_stage(result, targets, ("grad_x_weight", "act_mag"), args.topk)
        result = None


def ratio_text(num: Row, den: Row) -> str:
    pairs = [a / b for a, b in zip(num.seconds, den.seconds)]
    if not pairs:
        return "n/a"
    return f"{statistics.median(pairs):.2f}x ({min(pairs):.2f}-{max(pairs):.2f})"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.dry_run:
        device, shape = torch.device("cpu"), TINY
    elif not torch.cuda.is_available():
        print("gpu_phase2: no CUDA device here; nothing measured (use --dry-run to check the script on CPU)")
        return 0
    else:
        device, shape = torch.device("cuda"), SHAPES[args.shape]
    dtype, accum = DTYPES[args.dtype], DTYPES[args.accum_dtype]
    start = time.perf_counter()
    model = build_model(shape, dtype, device, args.seed)
    build_s = time.perf_counter() - start
    print(f"built {shape['num_hidden_layers']}-layer model on {device} in {build_s:.1f} s", flush=True)
    params = [(n, p) for n, p in model.named_parameters()]
    n_weights = sum(p.numel() for _, p in params)
    gen = torch.Generator().manual_seed(args.seed)
    windows = [torch.randint(0, shape["vocab_size"], (args.seq_len,), generator=gen) for _ in range(args.windows)]
    subset = windows[: args.hutchinson_windows]
    kw = dict(microbatch=args.microbatch, accum_dtype=accum, score_dtype=dtype, lazy=True, progress=False,
              seed=args.seed)

    bare, grad = Row("bare fwd+bwd"), Row("gradient pass (4 metrics)")
    topk = Row(f"top-{args.topk} per matrix (grad_x_weight, from accumulators)")
    h_bare, hutch = Row("bare fwd+bwd (Hutchinson subset)"), Row("hutchinson, 1 probe")

    # Warm-up: kernels, allocator, eager attention path.
    run_section(Row("warm-up"), device, lambda: bare_fwd_bwd(model, windows[: 2 * args.microbatch], params=params,
                                                             microbatch=args.microbatch))
    run_section(Row("warm-up"), device, lambda: score_model(model, params, windows[: 2 * args.microbatch],
                                                            GRAD_METRICS, **kw))
    meta = None
    for rep in range(args.reps):
        run_section(bare, device, lambda: bare_fwd_bwd(model, windows, params=params, microbatch=args.microbatch))
        log(bare)
        result = run_section(grad, device, lambda: score_model(model, params, windows, GRAD_METRICS, **kw))
        log(grad)
        if result is not None:
            meta = result.meta
            if rep == args.reps - 1:
                run_section(topk, device, lambda: topk_per_matrix(result, "grad_x_weight", args.topk))
                log(topk)
        result = None  # the accumulators (two model copies) must go before the next pass
    hkw = dict(kw, microbatch=args.hutchinson_microbatch, probes=1)
    for _ in range(args.reps):
        run_section(h_bare, device, lambda: bare_fwd_bwd(model, subset, params=params,
                                                         microbatch=args.hutchinson_microbatch))
        log(h_bare)
        run_section(hutch, device, lambda: score_model(model, params, subset, ["hutchinson_diag"], **hkw))
        log(hutch)

    stage = Row(f"stage work, {args.stage_seeds} seeds (gradient pass + top-{args.topk} per layer and global)")
    if args.stage_seeds:
        run_section(stage, device, lambda: stage_work(model, windows, args, kw))
        log(stage)

    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (dry run)"
    tokens = sum(w.numel() - 1 for w in windows)
    print(f"\n## Phase 2 scoring (GPU): {name}")
    print(f"model: Llama shape {shape}, {n_weights / 1e9:.2f}B weights, {args.dtype}, built in {build_s:.1f} s")
    print(f"tokens: {args.windows} x {args.seq_len} ({tokens} predicted), microbatch {args.microbatch}, "
          f"accumulators {args.accum_dtype}; Hutchinson on {len(subset)} windows, microbatch "
          f"{args.hutchinson_microbatch}\n")
    print("| section | median s | ratio (median, range) | peak allocated GB | note |")
    print("|---|---|---|---|---|")
    for row, ratio in ((bare, ""), (grad, ratio_text(grad, bare)), (topk, ""), (h_bare, ""),
                       (hutch, ratio_text(hutch, h_bare)), (stage, "")):
        print(f"| {row.section} | {row.median:.3f} | {ratio} | {row.peak_gb:.1f} | {row.note} |")
    if meta is not None:
        print(f"\nestimator (grad_squared): {meta.estimators['grad_squared']}")
    if args.json:
        rows = {r.section: {"seconds": r.seconds, "peak_gb": r.peak_gb, "note": r.note}
                for r in (bare, grad, topk, h_bare, hutch, stage)}
        args.json.write_text(json.dumps({"device": name, "shape": shape, "args": {
            k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
