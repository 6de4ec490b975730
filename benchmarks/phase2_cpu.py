"""Phase-2 scoring cost on CPU: the gradient-metrics pass and a Hutchinson probe against a bare fwd+bwd.

A random-weight Llama of ~36M parameters (fp32), random token windows. In one process, alternating after a
warm-up: (a) grad_x_weight + grad_squared + obd + act_mag in one sweep vs the bare per-sequence fwd+bwd loop on
the same windows (target <= 1.25x); (b) one Hutchinson probe vs one bare fwd+bwd on a subset (target <= 4x).
Then, each in a fresh subprocess, the peak RSS of the bare loop, of the gradient pass with streaming top-k, and of
a Hutchinson probe, against the model's fp32 bytes (target <= 4x).

    python benchmarks/phase2_cpu.py [--threads 1] [--write]   # --write records the table in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import add_llama_args, clock, machine, random_llama, report  # noqa: E402

from esa.engine.scoring.gradient_pass import bare_fwd_bwd  # noqa: E402
from esa.engine.scoring.passes import score_model  # noqa: E402

GRAD_METRICS = ["grad_x_weight", "grad_squared", "obd", "act_mag"]
SECTION = "## Phase 2 scoring (CPU)"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_llama_args(p, hidden=512, layers=8, intermediate=1536, heads=8, vocab=8192, seqs=16, seq_len=256)
    p.add_argument("--hutchinson-seqs", type=int, default=4)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    p.add_argument("--child", choices=["bare", "gradient", "hutchinson"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def setup(args):
    model, windows = random_llama(args)
    return model, list(model.named_parameters()), windows



def gradient_with_topk(model, params, windows, k: int = 100) -> None:
    """The pass as a large model uses it: lazy scores, one matrix at a time into a top-k."""
    result = score_model(model, params, windows, GRAD_METRICS, lazy=True, progress=False)
    for metric in GRAD_METRICS:
        for _, score in result.iter_scores(metric):
            if score is not None:
                torch.topk(score.reshape(-1), min(k, score.numel()))


class PeakRss:
    """Samples this process's RSS every few ms (ru_maxrss would include everything before the pass)."""

    def __init__(self):
        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.003)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def child(args) -> None:
    rss_start = psutil.Process().memory_info().rss
    model, params, windows = setup(args)
    rss_model = psutil.Process().memory_info().rss
    subset = windows[: args.hutchinson_seqs]
    run = {"bare": lambda: bare_fwd_bwd(model, windows, params=params),
           "gradient": lambda: gradient_with_topk(model, params, windows),
           "hutchinson": lambda: score_model(model, params, subset, ["hutchinson_diag"], probes=1, lazy=True,
                                             progress=False)}[args.child]
    with PeakRss() as peak:
        run()
    model_bytes = sum(p.numel() * 4 for _, p in params)
    print(json.dumps({"rss_start": rss_start, "rss_model": rss_model, "peak": peak.peak,
                      "model_bytes": model_bytes}))


# glibc keeps freed blocks below its (self-raising) mmap threshold for reuse, so RSS also counts memory that is
# free; a fixed small threshold returns large blocks to the system at once and shows what is actually in use.
NO_CACHE = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def measure_rss(argv: list[str], which: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv, "--child", which], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})"




def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.child:
        child(args)
        return 0
    load_before = os.getloadavg()
    model, params, windows = setup(args)
    subset = windows[: args.hutchinson_seqs]
    n_weights = sum(p.numel() for _, p in params)
    grad = lambda: score_model(model, params, windows, GRAD_METRICS, lazy=True, progress=False)  # noqa: E731
    bare = lambda: bare_fwd_bwd(model, windows, params=params)  # noqa: E731
    hutch = lambda: score_model(model, params, subset, ["hutchinson_diag"], probes=1, lazy=True,  # noqa: E731
                                progress=False)
    bare_subset = lambda: bare_fwd_bwd(model, subset, params=params)  # noqa: E731

    clock(lambda: bare_fwd_bwd(model, windows[:2], params=params))  # warm-up
    clock(lambda: score_model(model, params, windows[:2], GRAD_METRICS, lazy=True, progress=False))
    clock(lambda: score_model(model, params, windows[:1], ["hutchinson_diag"], probes=1, lazy=True,
                              progress=False))
    t_bare, t_grad, t_hb, t_h = [], [], [], []
    for rep in range(args.reps):
        first, second = (bare, grad) if rep % 2 == 0 else (grad, bare)  # alternate the order too
        a, b = clock(first), clock(second)
        t_bare.append(a if first is bare else b)
        t_grad.append(b if first is bare else a)
        first, second = (bare_subset, hutch) if rep % 2 == 0 else (hutch, bare_subset)
        a, b = clock(first), clock(second)
        t_hb.append(a if first is bare_subset else b)
        t_h.append(b if first is bare_subset else a)
        print(f"rep {rep}: bare {t_bare[-1]:.2f}s grad {t_grad[-1]:.2f}s | bare(subset) {t_hb[-1]:.2f}s "
              f"hutchinson {t_h[-1]:.2f}s", flush=True)
    del model, params
    passed = [a for a in argv if a != "--write"]
    rss = {which: measure_rss(passed, which) for which in ("bare", "gradient", "hutchinson")}
    rss["bare (no malloc cache)"] = measure_rss(passed, "bare", NO_CACHE)
    rss["gradient (no malloc cache)"] = measure_rss(passed, "gradient", NO_CACHE)
    load_after = os.getloadavg()

    tokens = args.seqs * (args.seq_len - 1)
    g_ratio = [g / b for g, b in zip(t_grad, t_bare)]
    h_ratio = [h / b for h, b in zip(t_h, t_hb)]
    model_mb = rss["bare"]["model_bytes"] / 2**20

    def mem(which: str) -> str:
        r = rss[which]
        total = (r["peak"] - r["rss_start"]) / r["model_bytes"]
        grow = (r["peak"] - r["rss_model"]) / r["model_bytes"]
        return f"{r['peak'] / 2**20:.0f} MB abs; {total:.2f}x incl. model, +{grow:.2f}x during the pass"

    command = "python benchmarks/phase2_cpu.py " + " ".join(argv)
    lines = [
        SECTION, "",
        f"Machine: {machine()}. Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other processes share these cores; timings are only comparable within one run).",
        f"Command: `{command.strip()}`", "",
        f"Model: random-weight Llama, hidden {args.hidden}, {args.layers} layers, intermediate {args.intermediate},"
        f" vocab {args.vocab}: {n_weights / 1e6:.1f}M parameters, fp32 ({model_mb:.0f} MB). Calibration: "
        f"{args.seqs} x {args.seq_len} random tokens ({tokens} predicted), per-sequence microbatches. Bare "
        "fwd+bwd = the same loop with only `loss.backward()` (SDPA attention); Hutchinson runs eager attention.",
        "",
        "| measurement | median s (bare / pass) | ratio median (range) | target | peak RSS (vs fp32 model bytes) |",
        "|---|---|---|---|---|",
        f"| gradient pass (grad_x_weight+grad_squared+obd+act_mag) vs bare fwd+bwd, {args.seqs} seqs | "
        f"{statistics.median(t_bare):.2f} / {statistics.median(t_grad):.2f} | {spread(g_ratio)} | <= 1.25x | "
        f"{mem('gradient')} (with streaming top-100 of all 4 metrics) |",
        f"| 1 Hutchinson probe vs bare fwd+bwd, {args.hutchinson_seqs} seqs | "
        f"{statistics.median(t_hb):.2f} / {statistics.median(t_h):.2f} | {spread(h_ratio)} | <= 4x | "
        f"{mem('hutchinson')} |",
        f"| bare fwd+bwd alone (reference) | {statistics.median(t_bare):.2f} | 1 | | {mem('bare')} |",
        f"| gradient pass, `MALLOC_MMAP_THRESHOLD_=65536` | | | <= 4x | {mem('gradient (no malloc cache)')} |",
        f"| bare fwd+bwd, `MALLOC_MMAP_THRESHOLD_=65536` | | | | {mem('bare (no malloc cache)')} |",
        "",
        "Peak RSS is sampled every 3 ms in a fresh subprocess per row; \"incl. model\" = (peak − RSS before the "
        "model was built) / fp32 model bytes, \"during the pass\" = growth after the model was built. The gradient "
        "pass holds two fp32 accumulators (Σ token-weighted gradient, Σ per-sequence gradient²) where the bare "
        "loop holds one `.grad`; the rest is activations and allocator caching, shared with the bare loop. The "
        "last two rows fix glibc's mmap threshold so freed large blocks leave the RSS at once. A Hutchinson probe "
        "holds its Hessian accumulator, the probe's z (cached on CPU; `cache_z=False` regenerates it from its seed "
        "instead, trading time for one model's worth of memory) and the graph of the first backward. These rows "
        "build the model in-process, so \"incl. model\" also holds what construction leaves behind and the modeling "
        "code's own memory; the score stage's path (weights mapped from safetensors) is measured in \"Host memory "
        "of scoring (CPU)\" below.",
    ]
    report(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
