"""Stage: perplexity, bits per byte and top-1 accuracy of a model on a corpus split, for one seed.

    python stages/evaluate.py --key phase1.standard-ref-s --seed 1337 --spec specs/phase1.yaml \
        --out results/phase1/standard-ref-s/seed1337
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.engine.data.windows import check_window_settings  # noqa: E402
from esa.stageio import (Manifest, bad_input, load_params, seed_part, stage_parser, write_json,  # noqa: E402
                         write_sampling)

REQUIRED = ("model", "data", "split", "context", "stride", "max_windows", "batch_size")


def read_params(key: str, path: str) -> dict:
    params = load_params(key, path)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    for name in ("context", "stride", "max_windows", "batch_size"):
        if not isinstance(params[name], int) or isinstance(params[name], bool):
            raise ValueError(f"params at '{key}': {name} must be an integer, got {params[name]!r}")
    check_window_settings(params["context"], params["stride"])
    return params


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="evaluation", seed=True, spec=True)
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params)
        folds, fold = seed_part(params, args.seed)
    except (KeyError, ValueError, OSError) as exc:
        return bad_input("evaluate", exc, "bad params")

    import torch

    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import check_settings, evaluate_windows, prepare_windows
    from esa.engine.models.loading import load_stage_model, n_params, quiet_hub_progress, resolve_device

    quiet_hub_progress()
    dtype, device = params.get("dtype", "float32"), params.get("device", "cpu")
    torch.manual_seed(args.seed)
    try:
        docs = load_split(Path(params["data"]), params["split"])
        loaded = load_stage_model(params)
        model, tokenizer = loaded.model, loaded.tokenizer
        check_settings(model, context=params["context"], stride=params["stride"], batch_size=params["batch_size"])
    except (ValueError, OSError) as exc:
        return bad_input("evaluate", exc)

    with Manifest(args.out, params=params, spec=args.spec, stage="evaluate") as manifest:
        resolved = resolve_device(device)
        manifest.set(seed=args.seed, model=str(params["model"]), device=str(resolved), dtype=dtype,
                     torch_dtype=str(next(model.parameters()).dtype), n_params=n_params(model),
                     threads=torch.get_num_threads(), split=params["split"], data=str(params["data"]),
                     **loaded.record)
        manifest.time("load_model", loaded.record["load_seconds"])
        t0 = time.perf_counter()
        prepared = prepare_windows(tokenizer, docs, context=params["context"], stride=params["stride"],
                                   max_windows=params["max_windows"], seed=args.seed, folds=folds, fold=fold)
        metrics, frame = evaluate_windows(model, prepared, batch_size=params["batch_size"], device=resolved)
        manifest.time("evaluate", time.perf_counter() - t0)
        metrics["sampling"] = write_sampling(args.out, prepared.draw)
        metrics.update(seed=args.seed, protocol=params.get("protocol"), model=str(params["model"]),
                       split=params["split"], context=params["context"], stride=params["stride"], dtype=dtype)
        write_json(args.out / "metrics.json", metrics)
        frame.to_parquet(args.out / "sequences.parquet", index=False)
        manifest.set(status_eval=metrics["status"], n_tokens=metrics["n_tokens"], n_windows=metrics["n_windows"])
    drawn = metrics["sampling"]
    print(f"evaluate {params['model']} seed {args.seed}: ppl {metrics['ppl']:.3f}, "
          f"bpb {metrics['bits_per_byte']:.4f}, top1 {metrics['top1_accuracy']:.4f} "
          f"over {metrics['n_tokens']} tokens / {metrics['n_windows']} windows from {drawn['n_docs']} documents "
          f"(part {fold + 1} of {folds} of a pool of {drawn['pool_windows']} windows) [{metrics['status']}]"
          + (f"; only {drawn['n_windows']} of {drawn['requested']} windows fit in the part" if drawn["shortfall"]
             else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
