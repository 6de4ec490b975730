"""Peak host RAM of the score stage's work on CPU, against the fp32 model's bytes (target <= 4x).

Each measurement is a fresh process doing what stages/score.py does: load the model from a folder with
from_pretrained (its weights stay a mapping of the safetensors file), score the default targets (no embeddings,
no head) with grad_x_weight + grad_squared + obd + act_mag in one sweep, then stream every matrix's score
through per-layer and global top-k selectors. Configurations, alternated within each repetition:

- ``default``: glibc's allocator as it comes;
- ``pinned``: the stage's setting, glibc's mmap threshold pinned at 128 KiB (esa.engine.host_memory);
- ``bare``: a plain fwd+bwd loop over the same windows with ``.grad`` kept, default allocator (reference).

Peak RSS is sampled every 2 ms; "x model" = (peak - RSS just before loading) / fp32 model bytes, so the
libraries' own memory (the modeling code imported) is left out. The pass time ratio pinned/default is taken within each repetition.

    python benchmarks/host_memory.py [--model models/smollm2-135m-instruct] [--reps 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import add_llama_args, machine, random_llama, report, select_like_the_stage  # noqa: E402

METRICS = ["grad_x_weight", "grad_squared", "obd", "act_mag"]
CONFIGS = ("default", "pinned", "bare")
SECTION = "## Host memory of scoring (CPU)"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_llama_args(p, hidden=512, layers=8, intermediate=1536, heads=8, vocab=8192, seqs=16, seq_len=256)
    p.add_argument("--model", help="a model folder (default: a random Llama of the shape above, saved to a temp dir)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--write", action="store_true", help="record the results in benchmarks/RESULTS.md")
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


class Sampler:
    """The process's RSS every 2 ms; ``peak(phase)`` is the largest seen while that phase was current."""

    def __init__(self):
        import psutil

        self.proc, self.phase, self.peaks, self.stop = psutil.Process(), "start", {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def rss(self) -> int:
        return self.proc.memory_info().rss

    def _run(self):
        while not self.stop.is_set():
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), self.rss())
            time.sleep(0.002)

    def enter(self, phase: str) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), self.rss())
        self.phase = phase

    def close(self) -> dict:
        self.enter("end")
        self.stop.set()
        self.thread.join()
        return self.peaks


def child(args) -> None:
    import torch
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    from esa.engine.host_memory import return_freed_blocks
    from esa.engine.models.loading import load_model
    from esa.engine.models.targets import scored_parameters
    from esa.engine.scoring.gradient_pass import bare_fwd_bwd
    from esa.engine.scoring.passes import score_model

    torch.set_num_threads(args.threads)
    if args.child == "pinned":
        assert return_freed_blocks()
    gen = torch.Generator().manual_seed(1)
    # The modeling code's own memory (about 0.1 GiB for Llama) is the library's, whatever the model's size.
    config = AutoConfig.from_pretrained(args.model)
    MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    sampler = Sampler()
    before = sampler.rss()
    sampler.enter("load")
    model, tokenizer = load_model(args.model)
    vocab = len(tokenizer)
    windows = [torch.randint(0, vocab, (args.seq_len,), generator=gen) for _ in range(args.seqs)]
    targets = scored_parameters(model)
    params = list({t.name: t.parameter for t in targets}.items())
    sampler.enter("pass")
    start = time.perf_counter()
    if args.child == "bare":
        bare_fwd_bwd(model, windows, params=params)
    else:
        result = score_model(model, params, windows, METRICS, lazy=True, progress=False)
    seconds = time.perf_counter() - start
    if args.child != "bare":
        sampler.enter("select")
        select_like_the_stage(result, targets, METRICS, 100)
    peaks = sampler.close()
    print(json.dumps({"before": before, "peaks": peaks, "seconds": seconds,
                      "model_bytes": sum(p.numel() * 4 for p in model.parameters()),
                      "scored_bytes": sum(p.numel() * 4 for _, p in params)}))


def run_child(argv: list[str], config: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv, "--child", config], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.child:
        child(args)
        return 0
    passed = [a for a in argv if a != "--write"]
    import torch

    torch.set_num_threads(args.threads)  # what the children run with, for the machine line
    with tempfile.TemporaryDirectory(prefix="esa-bench-") as folder:
        if not args.model:
            from esa.engine.data.tokenizer import save_tokenizer, train_tokenizer

            model, _ = random_llama(args)
            model.save_pretrained(folder)
            save_tokenizer(train_tokenizer(["a few words to learn merges from"] * 8, vocab_size=args.vocab,
                                           model_max_length=args.seq_len), Path(folder))
            del model
            passed += ["--model", folder]
        runs: dict[str, list[dict]] = {c: [] for c in CONFIGS}
        for rep in range(args.reps):
            order = CONFIGS[rep % 3:] + CONFIGS[:rep % 3]  # rotate the order
            for config in order:
                runs[config].append(run_child(passed, config))
            print(f"rep {rep}: " + ", ".join(f"{c} {runs[c][-1]['seconds']:.1f}s" for c in CONFIGS), flush=True)

    def ratio(r: dict, phase: str) -> float:
        return (r["peaks"].get(phase, 0) - r["before"]) / r["model_bytes"]

    def cell(config: str, phase: str) -> str:
        values = [ratio(r, phase) for r in runs[config]]
        return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"

    first = runs["default"][0]
    times = [p["seconds"] / d["seconds"] for p, d in zip(runs["pinned"], runs["default"])]
    model_desc = (args.model or f"random-weight Llama, hidden {args.hidden}, {args.layers} layers, intermediate "
                  f"{args.intermediate}, vocab {args.vocab}")
    section = SECTION + (f": {Path(args.model).name}" if args.model else ": random Llama")
    lines = [
        section, "",
        f"Machine: {machine()}. Command: `python benchmarks/host_memory.py {' '.join(argv)}`", "",
        f"Model: {model_desc}; {first['model_bytes'] / 2**20:.0f} MiB in fp32, of which the scored matrices "
        f"{first['scored_bytes'] / 2**20:.0f} MiB. Calibration: {args.seqs} x {args.seq_len} random tokens, "
        f"one sequence per microbatch. {args.reps} repetitions, fresh process each.", "",
        "| configuration | peak during load | peak during the pass | peak during top-k | target |",
        "|---|---|---|---|---|",
        *(f"| {c} | {cell(c, 'load')} | {cell(c, 'pass')} | {cell(c, 'select') if c != 'bare' else '-'} | "
          f"{'<= 4x' if c != 'bare' else ''} |" for c in CONFIGS),
        "",
        f"Pass time, pinned / default: {statistics.median(times):.2f}x (range {min(times):.2f}-{max(times):.2f}).",
        "",
        "Ratios are (peak RSS - RSS just before loading) / fp32 model bytes, medians (range). The model's weights "
        "are the safetensors file mapped into memory, counted once they are read; the pass adds the scored "
        "matrices' two fp32 accumulators (grad_x_weight's token-weighted gradient sum, grad_squared's sum of "
        "squares) and one microbatch's activations; top-k holds one score matrix at a time.",
    ]
    report(section, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
