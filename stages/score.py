"""Stage: sensitivity scores of one model on calibration windows for one seed, then top-k/bottom-k selection.

    python stages/score.py --key phase2.gradient --seed 1337 --spec specs/phase2.yaml \
        --out results/phase2/gradient/seed1337

Writes topk.parquet (metric, mode, tensor, layer, component, expert, row, col, flat_index, score, rank),
bottomk.parquet (per-matrix bottom-k candidates among non-zero weights, for Phase-3 controls),
tensor_stats.parquet (with log-spaced histograms, the null tail statistic, and per mode the k-th value and the tie
block at the boundary), layer_component.parquet, superweight.json (when asked), sampling.json (which calibration
windows and documents this seed drew: its document-disjoint part of the pool), scores/<metric>.safetensors (full
score tensors, small models only), summary.json (``model_size``: parameter counts, the N of a scaling fit;
``tokenizer_sha256``; ``expert_utilisation``: per MoE layer the share of routed slots each expert got on the first
calibration windows; ``unnamed_components``: the scored matrices no
component rule names, with their share of the scored weights, null when there are none) and manifest.json.

Before scoring it prints a memory estimate (esa.engine.scoring.memory) and records it in summary.json and the
manifest; when the estimate beyond the loaded weights exceeds the free device memory (CUDA) or the available RAM
(CPU), it refuses with one line and exit code 2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import (Manifest, bad_input, load_params, seed_part, stage_parser, write_json,  # noqa: E402
                         write_sampling)


def select_and_describe(result, targets, metric: str, params: dict, seed: int = 0, keep: bool = True):
    """Stream one metric's score tensors through the selectors and statistics; return frames (and, with
    ``keep``, every score tensor, to be saved: without it only one matrix's score is held at a time)."""
    import pandas as pd

    from esa.analysis.score_tables import layer_component_summary
    from esa.engine.scoring.score_stats import target_score_stats
    from esa.engine.scoring.select import Selector

    k = int(params["topk"])
    top = {mode: Selector(k, mode) for mode in params["modes"]}
    bottom = Selector(k, "per_layer", largest=False)
    stats, kept = [], {}
    for target in targets:
        score = result.score(metric, target.name)
        if score is None:  # e.g. act_mag has no score for an embedding
            continue
        for selector in (*top.values(), bottom):
            selector.add(target, score)
        stats.append({"metric": metric, **target_score_stats(
            target, score, metric=metric, hutchinson_mode=params.get("hutchinson_mode", "abs"), null_seed=seed)})
        if keep:
            kept[target.name] = score
    frames = []
    for mode, selector in top.items():
        frame = selector.result()
        frame.insert(0, "mode", mode)
        frame.insert(0, "metric", metric)
        frames.append(frame)
    topk = pd.concat(frames, ignore_index=True)
    bottomk = bottom.candidates()
    bottomk.insert(0, "metric", metric)
    stats_frame = pd.DataFrame(stats)
    # Each top-k mode's boundary (k-th value, its tie block, whether the cut falls inside it) as <mode>_ columns;
    # rows are in the order the selectors saw them. (Zero and non-finite scores, which top-k never selects, are
    # already counted in n_zero / n_nonfinite.)
    for mode, selector in top.items():
        sel_stats = selector.summary()
        if sel_stats["tensor"].tolist() != (stats_frame["tensor"].tolist() if len(stats_frame) else []):
            raise RuntimeError("selector summary and tensor stats list different matrices")
        for column in ("n_selected", "kth_value", "n_tied_at_boundary", "n_tied_taken", "boundary_in_tie_block"):
            stats_frame[f"{mode}_{column}"] = sel_stats[column].to_numpy()
    per_layer = topk[topk["mode"] == topk["mode"].iloc[0]] if len(topk) else topk
    summary = layer_component_summary(stats_frame, per_layer)
    summary.insert(0, "metric", metric)
    return topk, bottomk, stats_frame, summary, kept


UTILISATION_WINDOWS = 32  # forward passes counting an MoE's routing: enough tokens, little time on a large model


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="run's", seed=True, spec=True)
    args = parser.parse_args(argv)
    try:
        params = load_params(args.key, args.params)
        missing = [k for k in ("model", "data", "metrics", "modes", "topk", "max_windows", "context") if k not in params]
        if missing:
            raise KeyError(f"params at '{args.key}' lack {', '.join(missing)}")
        folds, fold = seed_part(params, args.seed)
    except (KeyError, ValueError, OSError) as exc:
        return bad_input("score", exc, "bad params")

    import pandas as pd
    import torch
    from safetensors.torch import save_file

    from esa.engine.data.corpus import load_split
    from esa.engine.models.loading import load_stage_model, n_params, quiet_hub_progress, resolve_device
    from esa.engine.data.batches import calibration_draw
    from esa.accumulators import resolve_accum_dtype
    from esa.engine.models.shape import model_shape
    from esa.engine.models.expert_load import expert_utilisation
    from esa.engine.models.size import model_size
    from esa.engine.models.tokenizer_identity import tokenizer_fingerprint
    from esa.engine.scoring.memory import estimate_memory, save_scores_of
    from esa.engine.host_memory import return_freed_blocks
    from esa.engine.scoring.memory_check import available_memory, host_memory_is_tight, refusal
    from esa.engine.scoring.passes import check_placement, score_model
    from esa.engine.models.targets import scored_parameters, unnamed_components, unnamed_warning

    quiet_hub_progress()
    torch.manual_seed(args.seed)
    dtype, device = params.get("dtype", "float32"), params.get("device", "cpu")
    try:
        loaded = load_stage_model(params)
        model, tokenizer = loaded.model, loaded.tokenizer
        docs = load_split(Path(params["data"]), params.get("split", "calibration"))
    except (ValueError, OSError) as exc:
        return bad_input("score", exc)

    resolved = resolve_device(device)
    model_dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    metrics = list(params["metrics"])
    try:
        # Params compiled before these knobs existed lack them: float32 and one sequence, as scoring was then.
        accum_dtype = resolve_accum_dtype(str(params.get("accum_dtype", "float32")), resolved.type, model_dtype)
        microbatch = int(params.get("microbatch", 1))
        if microbatch < 1:
            raise ValueError(f"microbatch must be at least 1, got {microbatch}")
    except ValueError as exc:
        return bad_input("score", exc, "bad params")
    targets = scored_parameters(model, include_embeddings=bool(params.get("include_embeddings")),
                                include_lm_head=bool(params.get("include_lm_head")),
                                components=params.get("components"))
    total = n_params(model)
    unique = list({t.name: t.parameter for t in targets}.items())
    try:
        check_placement(model, unique, metrics)
    except ValueError as exc:
        return bad_input("score", exc, "bad params")
    save = save_scores_of(params.get("save_scores", "auto"), total)
    estimate = estimate_memory(model_shape(model, targets), metrics, model_dtype=model_dtype, accum_dtype=accum_dtype,
                               microbatch=microbatch, context=int(params["context"]), save_scores=save,
                               cache_z=resolved.type == "cpu")
    print(f"memory estimate, score run {args.key} seed {args.seed}: {estimate.line()}")
    available, what = available_memory(resolved)
    if params.get("device_map") is not None:
        # accelerate sized the split with max_memory; the estimate assumes one device, so it is a note here.
        print(f"device_map: {loaded.record['device_map']}; the one-device memory check is skipped")
    else:
        refused = refusal(args.key, estimate, available, what, microbatch=microbatch, n_metrics=len(metrics))
        if refused:
            print(refused, file=sys.stderr)
            return 2
    # glibc keeps freed blocks for reuse (0.4x of a 36M model at the peak); when RAM is tight, trade speed (1.7x
    # there, benchmarks/host_memory.py) for getting them back at once.
    allocator = "default"
    if resolved.type == "cpu" and host_memory_is_tight(estimate, available) and return_freed_blocks():
        allocator = "freed blocks returned at once (glibc mmap threshold pinned at 128 KiB)"
        print(f"host memory is tight: {allocator}")

    with Manifest(args.out, params=params, spec=args.spec, stage="score") as manifest:
        windows, draw = calibration_draw(tokenizer, docs, context=int(params["context"]),
                                         max_windows=int(params["max_windows"]), seed=args.seed, folds=folds, fold=fold)
        sampling = write_sampling(args.out, draw)
        # Weights no component rule names are graded as one 'other' cell: say so before spending the compute.
        unnamed = unnamed_components(targets)
        if unnamed:
            print(unnamed_warning(unnamed), file=sys.stderr)
        t0 = time.perf_counter()
        result = score_model(model, unique, windows, metrics, device=resolved, seed=args.seed,
                             probes=int(params.get("probes", 8)),
                             hutchinson_windows=int(params.get("hutchinson_windows", 16)),
                             hutchinson_mode=params.get("hutchinson_mode", "abs"),
                             superweight_threshold=float(params.get("superweight_threshold", 50.0)),
                             pad_id=tokenizer.pad_token_id or 0, microbatch=microbatch, accum_dtype=accum_dtype,
                             lazy=True)
        manifest.time("score", time.perf_counter() - t0)

        t0 = time.perf_counter()
        parts: dict[str, list] = {"topk": [], "bottomk": [], "stats": [], "layers": []}
        (args.out / "scores").mkdir(parents=True, exist_ok=True)
        for metric in params["metrics"]:
            topk, bottomk, stats, layers, kept = select_and_describe(result, targets, metric, params, seed=args.seed,
                                                                       keep=save)
            for name, frame in zip(parts, (topk, bottomk, stats, layers)):
                parts[name].append(frame)
            if save:
                save_file({name: score.detach().float().cpu().contiguous() for name, score in kept.items()},
                          str(args.out / "scores" / f"{metric}.safetensors"))
        manifest.time("select", time.perf_counter() - t0)
        frames = {name: pd.concat(items, ignore_index=True) for name, items in parts.items()}
        frames["topk"].to_parquet(args.out / "topk.parquet", index=False)
        frames["bottomk"].to_parquet(args.out / "bottomk.parquet", index=False)
        frames["stats"].to_parquet(args.out / "tensor_stats.parquet", index=False)  # histograms as list columns
        frames["layers"].to_parquet(args.out / "layer_component.parquet", index=False)
        meta = result.meta.to_dict()
        # Hutchinson-only runs have no gradient sweep; their tokens are those the probes saw.
        meta["n_tokens"] = meta["n_tokens"] or (meta.get("hutchinson") or {}).get("tokens", 0)
        write_json(args.out / "superweight.json", meta.get("superweight") or {"requested": False})
        summary = {
            "seed": args.seed, "model": str(params["model"]), "metrics": list(params["metrics"]),
            "n_windows": len(windows), "n_tokens": meta["n_tokens"], "n_sequences": meta["n_sequences"],
            "sampling": sampling,
            # Hutchinson probes see a subset of the windows: say how many, not the sweep's count.
            "n_hutchinson_windows": (meta.get("hutchinson") or {}).get("windows"),
            "n_scored_weights": meta["n_weights"], "n_scored_tensors": len(targets), "n_params": total,
            "model_size": model_size(model),  # N of a scaling fit (esa.engine.models.size)
            "tokenizer_sha256": tokenizer_fingerprint(tokenizer),  # a ladder's models must share it
            # A mixture of experts: each router's share of routed token slots per expert (None when dense).
            "expert_utilisation": expert_utilisation(model, windows[:UTILISATION_WINDOWS], device=resolved),
            "unnamed_components": unnamed,
            "estimators": meta["estimators"], "passes": meta["passes"], "scores_saved": save,
            "microbatch": microbatch, "accum_dtype": meta["accum_dtype"], "memory_estimate": estimate.to_dict(),
            "top1pct_over_median": {m: float(s["top1pct_over_median"].median())
                                    for m, s in frames["stats"].groupby("metric")},
        }
        write_json(args.out / "summary.json", summary)
        manifest.set(seed=args.seed, device=str(resolved), dtype=dtype, n_params=total, scoring=meta,
                     memory_estimate=estimate.to_dict(), memory_available={"bytes": available, "what": what},
                     threads=torch.get_num_threads(), host_allocator=allocator, **loaded.record)
    print(f"score {params['model']} seed {args.seed}: {', '.join(params['metrics'])} over {meta['n_tokens']} "
          f"tokens / {len(windows)} windows; {len(frames['topk'])} selected rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
