"""Stage: train copies of the model on the shifted domain, one per arm, and measure forgetting and gain.

    python stages/adapt.py --key phase5.protect --seed 1337 --scores results/phase2/gradient/seed1337 \
        --baseline results/baselines/ref-s-stdlib/standard-float32/fold0of2-seed1337 --spec specs/phase5.yaml \
        --out results/phase5/protect/seed1337

The shifted domain is the corpus's docstring → function pairs (chat template, loss on the response): seed i of n
trains on part i of n document-disjoint parts of the train split's pairs; gain is measured on held-out pairs of
the evaluation split (the same for every seed). Forgetting is measured on the shared baseline's evaluation windows
with the Phase-1 evaluator. Each arm trains a copy (esa.engine.adaptation), so the loaded model, and the cached
one on disk, are never written. Writes conditions.parquet (per arm and evaluation window), domain.parquet (per
arm, "before" included, and held-out pair), summary.json (per arm: weights trained, time, loss curve, PPLs; DVC
metrics) and manifest.json.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import Manifest, bad_input, load_params, stage_parser, write_json  # noqa: E402

REQUIRED = ("model", "data", "arms", "metric", "fraction", "group", "steps", "batch_size", "learning_rate",
            "seq_len", "heldout_pairs", "seed_plan", "context", "stride", "max_windows", "eval_batch_size", "eval_seed")


def read_params(key: str, path, scores: Path, baseline: Path) -> dict:
    params = load_params(key, path)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    if "lora" in params["arms"] and importlib.util.find_spec("peft") is None:
        raise KeyError("the lora arm needs peft (pip install peft)")
    ranked = any(a in ("frozen", "fisher", "top", "bottom") for a in params["arms"])
    needed = [baseline / "sequences.parquet"]
    needed += [scores / "scores" / f"{m}.safetensors" for m in
               ([params["metric"]] if ranked else []) + (["grad_squared"] if "fisher" in params["arms"] else [])]
    for item in needed:
        if not item.exists():
            raise KeyError(f"{item} does not exist" + (" (the score run needs save_scores: true)"
                                                       if item.suffix == ".safetensors" else ""))
    return params


def adapt_seed(loaded, device, params: dict, *, seed: int, scores: Path, baseline_dir: Path, out: Path,
               spec: str | None) -> int:
    import pandas as pd
    import torch

    from esa.analysis.paired import ppl
    from esa.engine.adaptation.arms import ArmPlan, train_arm
    from esa.engine.adaptation.data import pair_loss, shifted_domain
    from esa.engine.adaptation.measure import pair_table
    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import evaluate_windows, prepare_windows
    from esa.engine.models.instruct import encode_pairs
    from esa.engine.perturbation.checksum import checksum, verify_restored
    from esa.engine.pruning.model_masks import load_metric_scores

    torch.manual_seed(seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    try:
        docs = load_split(Path(params["data"]), "evaluation")
        part, heldout = shifted_domain(tokenizer, Path(params["data"]), params["seed_plan"], seed,
                                       seq_len=int(params["seq_len"]), max_pairs=int(params.get("max_pairs", 0)),
                                       heldout_pairs=int(params["heldout_pairs"]))
    except (ValueError, OSError) as exc:
        return bad_input("adapt", exc)
    baseline = pd.read_parquet(baseline_dir / "sequences.parquet")
    prepared = prepare_windows(tokenizer, docs, context=int(params["context"]), stride=int(params["stride"]),
                               max_windows=int(params["max_windows"]), seed=int(params["eval_seed"]),
                               folds=int(params.get("folds", 1)), fold=int(params.get("fold", 0)))
    seq_len, batch = int(params["seq_len"]), int(params["batch_size"])
    train = encode_pairs(tokenizer, part, seq_len)[:3]
    held = encode_pairs(tokenizer, heldout, seq_len)[:3]
    arms = list(params["arms"])
    ranked = any(a in ("frozen", "fisher", "top", "bottom") for a in arms)
    ranking = load_metric_scores(scores, params["metric"]) if ranked else None
    fisher = load_metric_scores(scores, "grad_squared") if "fisher" in arms else None
    plan = ArmPlan(int(params["steps"]), batch, float(params["learning_rate"]), seed, float(params["fraction"]),
                   params["group"], float(params.get("fisher_strength", 1.0)), int(params.get("lora_rank", 8)),
                   float(params.get("lora_alpha", 16.0)))
    with Manifest(out, params=params, spec=spec, stage="adapt") as manifest:
        before = checksum(model, method="auto")
        domain = [pair_table(model, heldout, *held, batch).assign(arm="before")]
        frames, summary = [], []
        for arm in arms:
            result = train_arm(model, arm, pair_loss(*train), len(train[0]), plan, ranking, fisher)
            _, frame = evaluate_windows(result.model, prepared, batch_size=int(params["eval_batch_size"]),
                                        device=device, progress=False)
            if frame["window_id"].tolist() != baseline["window_id"].tolist():
                raise RuntimeError("evaluation windows after training differ from the baseline's")
            frames.append(frame.assign(arm=arm))
            domain.append(pair_table(result.model, heldout, *held, batch).assign(arm=arm))
            summary.append({"arm": arm, "n_trainable": result.n_trainable, "steps": result.steps,
                            "wall_time_s": result.wall_time_s, "final_train_loss": result.final_loss,
                            "ppl_after": ppl(frame), "new_ppl_after": ppl(domain[-1]),
                            "loss_curve": result.loss_curve})
            print(f"adapt {arm}: {result.n_trainable} weights trained, PPL {ppl(baseline):.3f} → {ppl(frame):.3f}, "
                  f"new-domain PPL {ppl(domain[0]):.3f} → {ppl(domain[-1]):.3f} ({result.wall_time_s:.0f} s)")
            del result
        verify_restored(before, model)  # every arm trained a copy: the loaded model is as it was loaded
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(frames, ignore_index=True).to_parquet(out / "conditions.parquet", index=False)
        pd.concat(domain, ignore_index=True).to_parquet(out / "domain.parquet", index=False)
        write_json(out / "summary.json", {"seed": seed, "ppl_before": ppl(baseline), "new_ppl_before": ppl(domain[0]),
                                          "n_train_pairs": len(train[0]), "n_heldout_pairs": len(heldout),
                                          "arms": summary})
        for row in summary:
            manifest.time(row["arm"], row["wall_time_s"])
        manifest.set(seed=seed, device=str(device), arms=arms, n_train_pairs=len(train[0]), **loaded.record)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="adapt run", seed=True, spec=True)
    parser.add_argument("--scores", required=True, type=Path, help="a score run's output folder (saved scores)")
    parser.add_argument("--baseline", required=True, type=Path, help="the shared baseline evaluation's folder")
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params, args.scores, args.baseline)
    except (KeyError, OSError) as exc:
        return bad_input("adapt", exc)

    import torch

    from esa.engine.models.loading import load_stage_model, quiet_hub_progress, resolve_device

    quiet_hub_progress()
    torch.manual_seed(args.seed)
    device = resolve_device(params.get("device", "cpu"))
    try:
        loaded = load_stage_model(params, device=str(device))
    except (ValueError, OSError) as exc:
        return bad_input("adapt", exc)
    return adapt_seed(loaded, device, params, seed=args.seed, scores=args.scores, baseline_dir=args.baseline,
                      out=args.out, spec=args.spec)


if __name__ == "__main__":
    sys.exit(main())
