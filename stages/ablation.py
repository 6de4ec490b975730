"""Stage: zero single weights one at a time, measure the held-out ΔNLL, and rank-correlate it with each metric.

    python stages/ablation.py --key phase2.ablation --seed 1337 --scores results/phase2/gradient/seed1337 \
        --spec specs/phase2.yaml --out results/phase2/ablation/seed1337

Scores read from the score run's folder are the "calibration" scores. With eval_scores, the gradient-pass metrics
are also computed on the held-out windows themselves ("evaluation" scores): the gap between the two is the
calibration-to-evaluation transfer. Every metric is a non-negative magnitude while zeroing a weight can also lower
the held-out NLL, so ρ is taken against |ΔNLL| by default (``target: abs``); ρ against the signed ΔNLL is reported
beside it. Writes ablation.parquet (one row per sampled weight), transfer.parquet (metric, source, target, rho,
ci_low, ci_high, n, rho_top, n_top, rho_random, n_random, rho_abs, rho_signed), summary.json (DVC metrics, with
the sampling rule) and manifest.json. The weights are every checked metric's global top set plus a uniform draw
(see esa.engine.scoring.ablation.sample_weights), so the sample favours no metric.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import (Manifest, bad_input, load_params, seed_part, stage_parser, write_json,  # noqa: E402
                         write_sampling)

REQUIRED = ("model", "data", "metrics", "rank_by")
DEFAULTS = {"top": 50, "n_random": 300, "eval_windows": 64, "context": 256, "batch_size": 16, "dtype": "float32",
            "device": "cpu", "eval_scores": True, "split": "evaluation", "n_boot": 1000, "target": "abs"}
# What the ranks are compared with: |ΔNLL| (what every metric, a non-negative magnitude, estimates) or ΔNLL.
TARGETS = ("abs", "signed")
POSITIVE = ("top", "eval_windows", "context", "batch_size")


def read_params(key: str, path: str, scores_dir: Path) -> dict:
    params = {**DEFAULTS, **load_params(key, path)}
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    for name in (*POSITIVE, "n_random", "n_boot"):
        value = params[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name in POSITIVE else 0):
            raise ValueError(f"params at '{key}': {name} must be a {'positive' if name in POSITIVE else 'non-negative'}"
                             f" integer, got {value!r}")
    if not isinstance(params["eval_scores"], bool):
        raise ValueError(f"params at '{key}': eval_scores must be true or false, got {params['eval_scores']!r}")
    if params["target"] not in TARGETS:
        raise ValueError(f"params at '{key}': target must be one of {', '.join(TARGETS)}, got {params['target']!r}")
    metrics = params["metrics"]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"params at '{key}': metrics must be a non-empty list of metric names")
    for metric in dict.fromkeys([*metrics, params["rank_by"]]):
        if not score_file(scores_dir, metric).exists():
            raise FileNotFoundError(f"missing scores file {score_file(scores_dir, metric)}")
    return params


def score_file(scores_dir: Path, metric: str) -> Path:
    return scores_dir / "scores" / f"{metric}.safetensors"


def check_same_model(scores_dir: Path, model: str) -> None:
    """The scores must come from the model being ablated (when the score run's manifest says which)."""
    import json

    path = scores_dir / "manifest.json"
    if not path.exists():
        return
    scored = (json.loads(path.read_text()).get("params") or {}).get("model")
    if scored is not None and Path(str(scored)).resolve() != Path(model).resolve():
        raise ValueError(f"scores in {scores_dir} are of model {scored}, not {model}")


def load_scores(scores_dir: Path, metric: str, shapes: dict[str, tuple[int, ...]]) -> dict:
    """A metric's full score tensors, each checked against the model's parameter of that name."""
    from safetensors.torch import load_file

    scores = load_file(str(score_file(scores_dir, metric)))
    for name, score in scores.items():
        if name not in shapes:
            raise ValueError(f"{metric} scores name '{name}', not a parameter of the model")
        if tuple(score.shape) != shapes[name]:
            raise ValueError(f"{metric} scores of '{name}' have shape {tuple(score.shape)}, "
                             f"the parameter {shapes[name]}")
    return scores


def evaluation_scores(model, frame, windows: list, metrics: list[str], *, device, seed: int,
                      pad_id: int) -> tuple[dict, dict]:
    """The gradient-pass metrics computed on the held-out windows, at each sampled weight; and their estimators."""
    from esa.engine.scoring.ablation import gather_scores
    from esa.engine.scoring.passes import score_model

    named = dict(model.named_parameters(remove_duplicate=False))
    params = [(n, named[n]) for n in dict.fromkeys(frame["tensor"])]  # only the tensors holding sampled weights
    result = score_model(model, params, windows, metrics, device=device, seed=seed, pad_id=pad_id, lazy=True)
    # Lazy scores use the weights as they are now: read them all before any weight is zeroed.
    values = {metric: gather_scores(result.scores(metric), frame) for metric in metrics}
    return values, result.meta.estimators


def transfer(frame, columns: list[str], params: dict, seed: int):
    """transfer.parquet: one row per (metric, source); ρ against the chosen target, ρ against both beside it."""
    import pandas as pd

    from esa.engine.scoring.ablation import transfer_table

    both = {target: transfer_table(frame, columns, absolute=target == "abs", n_boot=params["n_boot"], seed=seed)
            for target in TARGETS}
    table = both[params["target"]]
    parts = table["column"].str.extract(r"^score_(?P<metric>.+)_(?P<source>calibration|evaluation)$")
    table = pd.concat([parts.assign(target=params["target"]), table.drop(columns="column")], axis=1)
    for target, other in both.items():
        table[f"rho_{target}"] = other["rho"].to_numpy()
    return table


def summarize(frame, table, params: dict, *, seed: int, n_windows: int, n_tokens: int) -> dict:
    """summary.json (DVC metrics): ρ per metric and source, what was ablated, on how much text."""
    import numpy as np

    def by_source(column: str) -> dict:
        return {m: dict(zip(rows["source"], rows[column])) for m, rows in table.groupby("metric", sort=False)}

    delta = frame["delta_nll"].to_numpy(dtype=float)
    top = (frame["sample"] == "top").to_numpy()
    return {
        "seed": seed, "model": str(params["model"]), "rank_by": params["rank_by"], "metrics": params["metrics"],
        "target": params["target"], "rho": by_source("rho"), "rho_top": by_source("rho_top"),
        "rho_abs": by_source("rho_abs"), "rho_signed": by_source("rho_signed"), "rho_random": by_source("rho_random"),
        "n_weights": len(frame), "n_top": int(top.sum()), "n_random": int((~top).sum()),
        "n_nonfinite": int((~np.isfinite(delta)).sum()), "n_eval_windows": n_windows, "n_eval_tokens": n_tokens,
        "base_nll": float(frame["base_nll"].iloc[0]),
        "delta_nll_median": {"top": float(np.nanmedian(delta[top])) if top.any() else float("nan"),
                             "random": float(np.nanmedian(delta[~top])) if (~top).any() else float("nan")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="run's", seed=True, spec=True)
    parser.add_argument("--scores", required=True, type=Path, help="the score run's output folder for this seed")
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params, args.scores)
        folds, fold = seed_part(params, args.seed)
    except (KeyError, ValueError, OSError) as exc:
        return bad_input("ablation", exc, "bad params")

    import torch

    from esa.engine.scoring.ablation import ablate, gather_scores, locate, sample_weights
    from esa.engine.data.corpus import load_split
    from esa.engine.scoring.metrics import get_metric
    from esa.engine.models.loading import load_stage_model, max_context, quiet_hub_progress, resolve_device
    from esa.engine.data.batches import calibration_draw

    quiet_hub_progress()
    torch.manual_seed(args.seed)
    metrics = list(dict.fromkeys(params["metrics"]))
    try:
        check_same_model(args.scores, str(params["model"]))
        loaded = load_stage_model(params)
        model, tokenizer = loaded.model, loaded.tokenizer
        limit = max_context(model)
        if limit is not None and params["context"] > limit:
            raise ValueError(f"context {params['context']} exceeds the model's max_position_embeddings {limit}")
        docs = load_split(Path(params["data"]), params["split"])
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters(remove_duplicate=False)}
        # Every checked metric's top set plus a uniform draw: sampling by one metric's ranks biases the others' ρ.
        rankings = {m: load_scores(args.scores, m, shapes) for m in dict.fromkeys([*metrics, params["rank_by"]])}
        weights = sample_weights(rankings, top=params["top"], n_random=params["n_random"], seed=args.seed,
                                 weights=dict(model.named_parameters(remove_duplicate=False)),
                                 rank_by=params["rank_by"])
        sampling = weights.attrs["sampling"]
        calibration = {m: gather_scores(rankings[m], weights) for m in metrics}
        del rankings
        eval_metrics = [m for m in metrics if get_metric(m).pass_kind == "gradient"] if params["eval_scores"] else []
    except (KeyError, ValueError, OSError) as exc:
        return bad_input("ablation", exc)

    with Manifest(args.out, params=params, spec=args.spec, stage="ablation") as manifest:
        start = time.perf_counter()
        args.out.mkdir(parents=True, exist_ok=True)
        device = resolve_device(params["device"])
        pad_id = tokenizer.pad_token_id or 0
        # The evaluator's sliding-window sampler with stride context - 1: every token but a window's first is
        # predicted once, so the same windows serve the damage measurement and the evaluation-text scores.
        windows, draw = calibration_draw(tokenizer, docs, context=params["context"], max_windows=params["eval_windows"],
                                         seed=args.seed, folds=folds, fold=fold)
        write_sampling(args.out, draw)
        if not windows:
            raise ValueError(f"no {params['split']} windows")
        frame = locate(weights, shapes)
        for metric, values in calibration.items():
            frame[f"score_{metric}_calibration"] = values
        estimators = {}
        if eval_metrics:
            t0 = time.perf_counter()
            values, estimators = evaluation_scores(model, frame, windows, eval_metrics, device=device, seed=args.seed,
                                                   pad_id=pad_id)
            for metric, column in values.items():
                frame[f"score_{metric}_evaluation"] = column
            manifest.time("eval_scores", time.perf_counter() - t0)

        t0 = time.perf_counter()
        frame = ablate(model, frame, windows, batch_size=params["batch_size"], device=device, pad_id=pad_id)
        n_tokens = int(frame.attrs["n_tokens"])
        manifest.time("ablate", time.perf_counter() - t0)

        columns = [c for c in frame.columns if c.startswith("score_")]
        table = transfer(frame, columns, params, args.seed)
        order = ["tensor", "layer", "component", "expert", "row", "col", "flat_index", "rank", "sample", "stratum",
                 "top_of", "weight", "base_nll", "ablated_nll", "delta_nll", *columns]
        frame[order].to_parquet(args.out / "ablation.parquet", index=False)
        table.to_parquet(args.out / "transfer.parquet", index=False)

        summary = summarize(frame, table, params, seed=args.seed, n_windows=len(windows), n_tokens=n_tokens)
        summary.update(eval_score_metrics=eval_metrics, weight_sampling=sampling,
                       time_s={**manifest.data["timings"], "total": round(time.perf_counter() - start, 2)})
        write_json(args.out / "summary.json", summary)
        manifest.set(seed=args.seed, device=str(device), dtype=params["dtype"], scores=str(args.scores),
                     split=params["split"], n_eval_tokens=n_tokens, evaluation_estimators=estimators,
                     threads=torch.get_num_threads(), **loaded.record)
    best = table[table["source"] == "calibration"].sort_values("rho", ascending=False).head(1)
    lead = f"; best calibration rho {best['metric'].iloc[0]} {best['rho'].iloc[0]:.3f}" if len(best) else ""
    print(f"ablation {params['model']} seed {args.seed}: {len(frame)} weights over {n_tokens} held-out tokens / "
          f"{len(windows)} windows{lead}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
