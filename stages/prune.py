"""Stage: prune the model to each sparsity with each method, evaluating every condition on the baseline's windows.

    python stages/prune.py --key phase5.prune --seed 1337 --scores results/phase2/gradient/seed1337 \
        --baseline results/baselines/ref-s-stdlib/standard-float32/fold0of2-seed1337 --spec specs/phase5.yaml \
        --out results/phase5/prune/seed1337 [--protect results/phase2/superweight/seed1337]

Masks rank by the method's score (esa.engine.pruning: magnitude, Wanda's |W|·‖X‖ from the saved act_mag, the saved
ESA scores, or seeded random draws), per output row or per matrix. Each condition is pruned in place, evaluated
and restored bit-exactly (checked by checksum), so the cached model is never written. Writes conditions.parquet
(one row per condition and window), sparsity.parquet (the sparsity each matrix reached in each condition),
summary.json (PPL per condition, protected weights, time per arm; DVC metrics) and manifest.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import Manifest, bad_input, load_params, stage_parser, write_json  # noqa: E402

REQUIRED = ("model", "data", "methods", "sparsities", "groups", "context", "stride", "max_windows", "batch_size",
            "eval_seed")


def read_params(key: str, path, scores: Path, baseline: Path, protect: Path | None) -> dict:
    """The run's params, checked, and its inputs' presence: an error before any model is loaded."""
    from esa.engine.pruning.masks import SAVED_METRIC

    params = load_params(key, path)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    needed = [baseline / "sequences.parquet"]
    needed += [scores / "scores" / f"{m}.safetensors" for m in dict.fromkeys(SAVED_METRIC[x] for x in params["methods"])
               if m is not None]
    if (params.get("protect") is None) != (protect is None):
        raise KeyError("--protect is given exactly when the params name a protected set")
    if protect is not None:
        needed.append(protect / "topk.parquet")
    for path_needed in needed:
        if not path_needed.exists():
            hint = " (the score run needs save_scores: true)" if path_needed.suffix == ".safetensors" else ""
            raise KeyError(f"{path_needed} does not exist{hint}")
    return params


def prune_seed(loaded, device, params: dict, *, seed: int, scores: Path, baseline_dir: Path, protect: Path | None,
               out: Path, spec: str | None) -> int:
    import pandas as pd
    import torch

    from esa.analysis.paired import delta_ppl, ppl
    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import evaluate_windows, prepare_windows
    from esa.engine.perturbation.checksum import checksum
    from esa.engine.pruning.conditions import conditions, protected_positions, run_conditions
    from esa.engine.pruning.model_masks import load_metric_scores

    torch.manual_seed(seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    try:
        docs = load_split(Path(params["data"]), "evaluation")
        shield, rule = None, params.get("protect")
        if protect is not None:
            shield = protected_positions(pd.read_parquet(protect / "topk.parquet"), metric=rule["metric"],
                                         mode=rule["mode"], k=rule.get("k"))
    except (ValueError, OSError) as exc:
        return bad_input("prune", exc)
    baseline = pd.read_parquet(baseline_dir / "sequences.parquet")
    prepared = prepare_windows(tokenizer, docs, context=int(params["context"]), stride=int(params["stride"]),
                               max_windows=int(params["max_windows"]), seed=int(params["eval_seed"]),
                               folds=int(params.get("folds", 1)), fold=int(params.get("fold", 0)))

    def evaluate(m):
        frame = evaluate_windows(m, prepared, batch_size=int(params["batch_size"]), device=device, progress=False)[1]
        if frame["window_id"].tolist() != baseline["window_id"].tolist():
            raise RuntimeError("pruned evaluation windows differ from the baseline's")
        return frame

    todo = conditions(params["methods"], params["sparsities"], params["groups"],
                      (rule or {}).get("methods", []) if shield is not None else [])
    with Manifest(out, params=params, spec=spec, stage="prune") as manifest:
        reference = checksum(model, method="auto")
        try:
            results = run_conditions(model, todo, evaluate=evaluate, saved_scores=lambda metric: load_metric_scores(scores, metric), seed=seed,
                                     protected=shield, reference=reference)
        except (KeyError, ValueError) as exc:  # a score file without a matrix, a protected set that fills a row
            return bad_input("prune", exc)
        for row, frame in zip(results.summary, results.frames):
            ok = row["status"] == "ok"
            row.update(ppl=ppl(frame) if ok else None, delta_ppl=delta_ppl(baseline, frame) if ok else None)
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(results.frames, ignore_index=True).to_parquet(out / "conditions.parquet", index=False)
        pd.concat(results.sparsity, ignore_index=True).to_parquet(out / "sparsity.parquet", index=False)
        n_protected = sum(len(v) for v in (shield or {}).values())
        write_json(out / "summary.json", {"seed": seed, "baseline_ppl": ppl(baseline), "conditions": results.summary,
                                          "n_protected": n_protected,
                                          "protected": {k: [list(p) for p in v] for k, v in (shield or {}).items()},
                                          "seconds": {k: round(v, 3) for k, v in results.seconds.items()}})
        for name, seconds in results.seconds.items():
            manifest.time(name, seconds)
        manifest.set(seed=seed, device=str(device), n_conditions=len(todo), n_protected=n_protected, **loaded.record)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="prune run", seed=True, spec=True)
    parser.add_argument("--scores", required=True, type=Path, help="a score run's output folder (saved scores)")
    parser.add_argument("--baseline", required=True, type=Path, help="the shared baseline evaluation's folder")
    parser.add_argument("--protect", type=Path, help="the score run folder whose top-k the protected arms keep")
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params, args.scores, args.baseline, args.protect)
    except (KeyError, OSError) as exc:
        return bad_input("prune", exc)

    import torch

    from esa.engine.models.loading import load_stage_model, quiet_hub_progress, resolve_device

    quiet_hub_progress()
    torch.manual_seed(args.seed)
    device = resolve_device(params.get("device", "cpu"))
    try:
        loaded = load_stage_model(params, device=str(device))
    except (ValueError, OSError) as exc:
        return bad_input("prune", exc)
    return prune_seed(loaded, device, params, seed=args.seed, scores=args.scores, baseline_dir=args.baseline,
                      protect=args.protect, out=args.out, spec=args.spec)


if __name__ == "__main__":
    sys.exit(main())
