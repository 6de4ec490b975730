"""Stage: perturb the Phase-2 super set and matched controls, evaluating each condition on the baseline's windows.

    python stages/perturb.py --key phase3.signflip --seed 1337 --scores results/phase2/gradient/seed1337 \
        --baseline results/baselines/ref-s-stdlib/standard-float32/seed1337 --spec specs/phase3.yaml \
        --out results/phase3/signflip/seed1337

For every level and target (super, random_k, random_matched, bottom_k): apply in place (only touched elements
are saved), evaluate per window, restore, and prove the restore by checksum. Writes conditions.parquet (one row
per condition and window), summary.json (ΔPPL per condition and the super weights with their original values;
DVC metrics) and manifest.json. Each condition records how many weights grew, shrank or kept their magnitude. A
condition that produces NaN/inf is recorded as diverged, never a crash. The windows are the baseline's: the same
seed and the same document-disjoint fold.

Each target's draws (noise, random bits, the flipped fraction) come from one seed per (run seed, target), the
same at every level: a dose series then scales one draw (common random numbers), so its trend is about the dose.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.names import TARGETS, check_implemented  # noqa: E402
from esa.stageio import Manifest, bad_input, load_params, stage_parser, write_json  # noqa: E402

REQUIRED = ("model", "data", "perturbation", "levels", "controls", "scores", "context", "stride", "max_windows",
            "batch_size", "eval_seed")
# A fixed offset per target (not its position), so adding a control does not change another target's draws.
TARGET_STREAM = {"super": 0, "random_k": 1, "bottom_k": 2, "random_matched": 3}
check_implemented("perturbation targets", TARGET_STREAM, TARGETS)
MAGNITUDE = ("n_grew", "n_shrank", "n_unchanged")
SUPER_RECORDED = 32  # summary.json names this many super weights at most (n_super counts them all)


def condition_seed(seed: int, target: str) -> int:
    """The perturbation seed of one target: independent of the level, so every level rescales the same draw."""
    return seed * 1000 + TARGET_STREAM[target]


def calibration_gradient(model, tokenizer, data: Path, context: int, seed: int, n_windows: int = 64) -> dict:
    """∂(mean calibration NLL)/∂w for grad_step, from the same calibration sampler the scoring stage uses."""
    import torch

    from esa.engine.data.corpus import load_split
    from esa.engine.data.batches import calibration_windows

    windows = calibration_windows(tokenizer, load_split(data, "calibration"), context=context,
                                  max_windows=n_windows, seed=seed)
    model.zero_grad(set_to_none=True)
    total = sum(len(w) - 1 for w in windows)
    for ids in windows:
        out = model(input_ids=ids[None], labels=ids[None])
        (out.loss * (len(ids) - 1) / total).backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        return grads


def selections(params: dict, scores_dir: Path, model, seed: int) -> dict:
    import pandas as pd

    from esa.engine.perturbation.controls import bottom_k, random_k, random_matched, super_set
    from esa.engine.perturbation.apply import parameters

    ref = params["scores"]
    topk = pd.read_parquet(scores_dir / "topk.parquet")
    chosen = {"super": super_set(topk, int(ref["k"]), metric=ref["metric"], mode=ref["mode"])}
    named = parameters(model)
    if "random_k" in params["controls"]:
        chosen["random_k"] = random_k(chosen["super"], named, seed)
    if "random_matched" in params["controls"]:
        chosen["random_matched"] = random_matched(chosen["super"], named, seed)
    if "bottom_k" in params["controls"]:
        candidates = pd.read_parquet(scores_dir / "bottomk.parquet")
        candidates = candidates[candidates["metric"] == ref["metric"]]
        chosen["bottom_k"] = bottom_k(chosen["super"], candidates, named)
    return chosen


def super_weights(super_df, named: dict) -> list[dict]:
    """The super weights the run perturbs, highest score first (at most SUPER_RECORDED): where each sits and its
    value before any condition, so a grade can name the weight it is about."""
    import pandas as pd

    def whole(value):  # layer and expert are NA where there is none (an embedding, a dense matrix)
        return None if pd.isna(value) else int(value)

    top = super_df.sort_values(["score", "tensor", "flat_index"], ascending=[False, True, True], kind="stable")
    out = []
    for row in top.head(SUPER_RECORDED).to_dict("records"):
        value = named[row["tensor"]].detach().reshape(-1)[int(row["flat_index"])]
        out.append({"tensor": row["tensor"], "layer": whole(row["layer"]), "component": row["component"],
                    "expert": whole(row["expert"]), "row": int(row["row"]), "col": int(row["col"]),
                    "flat_index": int(row["flat_index"]), "score": float(row["score"]), "value": float(value)})
    return out


def matched_summary(chosen: dict) -> dict | None:
    """How the magnitude-matched control matched: weights at the super weight's own exponent and at neighbours."""
    frame = chosen.get("random_matched")
    if frame is None:
        return None
    distance = frame["exponent_distance"]
    return {"n_same_exponent": int((distance == 0).sum()), "n_neighbour_exponent": int((distance > 0).sum()),
            "max_exponent_distance": int(distance.max()) if len(frame) else 0}


def read_params(key: str, path, scores: Path, baseline: Path) -> dict:
    """The run's params, checked, and its inputs' presence: KeyError before any model is loaded."""
    params = load_params(key, path)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    for needed in (scores / "topk.parquet", baseline / "sequences.parquet"):
        if not needed.exists():
            raise KeyError(f"{needed} does not exist (run the scoring and baseline stages first)")
    return params


def perturb_seed(loaded, device, params: dict, *, seed: int, scores: Path, baseline_dir: Path, out: Path,
                 spec: str | None, record: dict | None = None) -> int:
    """One run and seed on a loaded model: every condition, restored after each; writes out/. Returns the exit
    code (2: bad input). The model comes back with its weights as they were, so the next seed can reuse it."""
    import numpy as np
    import pandas as pd
    import torch

    from esa.analysis.paired import delta_ppl, ppl
    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import evaluate_windows, prepare_windows
    from esa.engine.perturbation.apply import checksum, parameters, params_from_spec, perturbed

    torch.manual_seed(seed)  # as if freshly started, whichever seeds ran on this model before
    model, tokenizer = loaded.model, loaded.tokenizer
    try:
        docs = load_split(Path(params["data"]), "evaluation")
    except (ValueError, OSError) as exc:
        return bad_input("perturb", exc)
    baseline = pd.read_parquet(baseline_dir / "sequences.parquet")
    try:
        chosen = selections(params, scores, model, seed)
    except ValueError as exc:  # e.g. k beyond the stored top-k, or a matrix without enough control candidates
        return bad_input("perturb", exc)
    recorded = super_weights(chosen["super"], parameters(model))  # read before any condition touches them
    with Manifest(out, params=params, spec=spec, stage="perturb") as manifest:
        # The baseline's fold of the document-disjoint evaluation pool, so the window ids match it exactly.
        prepared = prepare_windows(tokenizer, docs, context=int(params["context"]), stride=int(params["stride"]),
                                   max_windows=int(params["max_windows"]), seed=int(params["eval_seed"]),
                                   folds=int(params.get("folds", 1)), fold=int(params.get("fold", 0)))
        grad = None
        if params["perturbation"] == "grad_step":
            grad = calibration_gradient(model, tokenizer, Path(params["data"]), int(params["context"]), seed)
        reference = checksum(model, method="auto")  # once per run; each condition proves its restore against it
        frames, summary, timings = [], [], {"apply_restore": 0.0, "evaluate": 0.0}
        for level in params["levels"]:
            settings = params_from_spec(params["perturbation"], params, level=float(level))
            for target, selection in chosen.items():
                start = time.perf_counter()
                with perturbed(model, selection, params["perturbation"], settings,
                               seed=condition_seed(seed, target), grad=grad, reference=reference) as applied:
                    applied_at = time.perf_counter()
                    _, frame = evaluate_windows(model, prepared, batch_size=int(params["batch_size"]),
                                                device=device, progress=False)
                    evaluated_at = time.perf_counter()
                timings["evaluate"] += evaluated_at - applied_at
                timings["apply_restore"] += (applied_at - start) + (time.perf_counter() - evaluated_at)
                if frame["window_id"].tolist() != baseline["window_id"].tolist():
                    raise RuntimeError("perturbed evaluation windows differ from the baseline's")
                diverged = applied.diverged or not np.isfinite(frame["nll_sum"].to_numpy()).all()
                magnitude = {name: getattr(applied, name) for name in MAGNITUDE}
                frame = frame.assign(target=target, level=float(level), n_touched=applied.n_touched,
                                     n_nonfinite_weights=applied.n_nonfinite, **magnitude, diverged=diverged)
                frames.append(frame)
                summary.append({"level": float(level), "target": target, "n_touched": applied.n_touched,
                                "n_nonfinite_weights": applied.n_nonfinite, **magnitude,
                                "status": "diverged" if diverged else "ok",
                                "ppl": None if diverged else ppl(frame),
                                "delta_ppl": None if diverged else delta_ppl(baseline, frame)})
                print(f"perturb {params['perturbation']} level {level} {target}: "
                      + ("diverged" if diverged else f"ΔPPL {summary[-1]['delta_ppl']:+.4f}")
                      + f" ({applied.n_touched} weights: {applied.n_grew} grew, {applied.n_shrank} shrank)")
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(frames, ignore_index=True).to_parquet(out / "conditions.parquet", index=False)
        write_json(out / "summary.json", {"seed": seed, "baseline_ppl": ppl(baseline), "conditions": summary,
                                          "n_super": len(chosen["super"]), "super_weights": recorded})
        for name, seconds in timings.items():
            manifest.time(name, seconds)
        manifest.set(seed=seed, device=str(device), n_conditions=len(summary), **loaded.record, **(record or {}),
                     selection_sizes={t: len(s) for t, s in chosen.items()}, matched_exponents=matched_summary(chosen))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="perturbation run", seed=True, spec=True)
    parser.add_argument("--scores", required=True, type=Path, help="a Phase-2 scoring stage's output folder")
    parser.add_argument("--baseline", required=True, type=Path, help="the shared baseline evaluation's folder")
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params, args.scores, args.baseline)
    except (KeyError, OSError) as exc:
        return bad_input("perturb", exc)

    import torch

    from esa.engine.models.loading import load_stage_model, quiet_hub_progress, resolve_device

    quiet_hub_progress()
    torch.manual_seed(args.seed)
    device = resolve_device(params.get("device", "cpu"))
    try:
        loaded = load_stage_model(params, device=str(device))
    except (ValueError, OSError) as exc:
        return bad_input("perturb", exc)
    return perturb_seed(loaded, device, params, seed=args.seed, scores=args.scores, baseline_dir=args.baseline,
                        out=args.out, spec=args.spec)


if __name__ == "__main__":
    sys.exit(main())
