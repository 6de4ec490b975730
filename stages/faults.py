"""Stage: random bit errors at a sweep of rates and a progressive bit-flip attack, in each storage format.

    python stages/faults.py --key security.faults --seed 1337 --part 0 \
        --critical results/phase2/gradient/seed1337 --spec specs/security.yaml --out results/security/faults/seed1337

For each format (fp32, bf16, int8 after symmetric per-row quantisation) the scored matrices are held as stored
words (esa.engine.faults.storage) and the held-out windows are evaluated once for the format's baseline. Then
``trials`` independent draws per rate and arm (nothing exempt, the critical set exempt as ECC would keep it, or a
matched random set exempt), each applied, evaluated and restored bit for bit. With ``attack``, a progressive bit
search on this seed's part of the calibration split, against an unrestricted attacker, one kept off the critical
set, and random flips, judged after every flip on the same held-out windows. Writes trials.parquet, attack.parquet,
summary.json (baselines, collapse counts, flips to collapse; DVC metrics) and manifest.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import Manifest, bad_input, load_params, stage_parser, write_json  # noqa: E402

REQUIRED = ("model", "data", "formats", "rates", "arms", "trials", "collapse_factor", "context", "stride",
            "max_windows", "batch_size", "eval_seed", "critical")


def read_params(key: str, path, critical: Path) -> dict:
    """The run's params, checked, and the critical set's presence: an error before any model is loaded."""
    params = load_params(key, path)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    if not (critical / "topk.parquet").exists():
        raise KeyError(f"{critical / 'topk.parquet'} does not exist (the critical set's score run has not run)")
    return params


def attack_windows(tokenizer, params: dict, *, seed: int, part: int):
    """This seed's attack windows: part ``part`` of the calibration split (disjoint from every other seed's and
    from the evaluation split the attack is judged on)."""
    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import prepare_windows

    docs = load_split(Path(params["data"]), "calibration")
    return prepare_windows(tokenizer, docs, context=int(params["context"]), stride=int(params["stride"]),
                           max_windows=int(params["attack"]["windows"]), seed=seed,
                           folds=int(params["attack_parts"]), fold=part)


def attack_loss(model, prepared, device):
    """The attacker's objective: mean next-token NLL over its windows (pads ignored)."""
    import torch

    from esa.engine.evaluation.evaluate import _batch_inputs

    ids, mask = _batch_inputs(prepared.tokenized, prepared.windows, prepared.pad_id, torch.device(device))
    labels = ids.masked_fill(mask == 0, -100)
    return lambda: model(input_ids=ids, attention_mask=mask, labels=labels).loss


def faults_seed(loaded, device, params: dict, *, seed: int, part: int, critical_dir: Path, out: Path,
                spec: str | None) -> int:
    import math
    import time

    import numpy as np
    import pandas as pd
    import torch

    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import evaluate_windows, prepare_windows
    from esa.engine.faults.attacks import run_attacks
    from esa.engine.faults.storage import stored_as
    from esa.engine.faults.trials import TrialPlan, critical_masks, matched_random_masks, run_trials
    from esa.engine.pruning.conditions import protected_positions

    torch.manual_seed(seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    rule = params["critical"]
    try:
        docs = load_split(Path(params["data"]), "evaluation")
        cells = protected_positions(pd.read_parquet(critical_dir / "topk.parquet"), metric=rule["metric"],
                                    mode=rule["mode"], k=rule.get("k"))
        attack = params.get("attack")
        attack_data = attack_windows(tokenizer, params, seed=seed, part=part) if attack else None
    except (ValueError, OSError) as exc:
        return bad_input("faults", exc)
    prepared = prepare_windows(tokenizer, docs, context=int(params["context"]), stride=int(params["stride"]),
                               max_windows=int(params["max_windows"]), seed=int(params["eval_seed"]),
                               folds=int(params.get("folds", 1)), fold=int(params.get("fold", 0)))

    def evaluate() -> float:
        frame = evaluate_windows(model, prepared, batch_size=int(params["batch_size"]), device=device,
                                 progress=False)[1]
        nll = frame["nll_sum"].to_numpy(dtype=float)  # pandas' sum would skip a NaN window
        value = math.exp(nll.sum() / frame["n_tokens"].sum()) if np.isfinite(nll).all() else math.inf
        return value if math.isfinite(value) else math.inf

    plan = TrialPlan(rates=[float(r) for r in params["rates"]], trials=int(params["trials"]),
                     collapse_factor=float(params["collapse_factor"]))
    rows, attack_rows, baselines, seconds = [], [], {}, {}
    with Manifest(out, params=params, spec=spec, stage="faults") as manifest:
        model.eval()
        for fmt in params["formats"]:
            with stored_as(model, fmt) as stored:
                try:
                    critical = critical_masks(stored, cells)
                    random = matched_random_masks(stored, critical, torch.Generator().manual_seed(seed))
                except (KeyError, ValueError) as exc:
                    return bad_input("faults", exc)
                baselines[fmt] = evaluate()
                masks = {"none": None, "critical": critical, "random": random}
                started = time.perf_counter()
                rows.extend(run_trials(stored, evaluate, baseline_ppl=baselines[fmt], plan=plan,
                                       arms={arm: masks[arm] for arm in params["arms"]}, seed=seed))
                seconds[f"trials.{fmt}"] = time.perf_counter() - started
                if attack and fmt in attack["formats"]:
                    started = time.perf_counter()
                    attack_rows.extend(run_attacks(
                        stored, attack_loss(model, attack_data, device), evaluate, baseline_ppl=baselines[fmt],
                        collapse_factor=plan.collapse_factor, arms=attack["arms"], budget=int(attack["budget"]),
                        shortlist=int(attack["shortlist"]), critical=critical, seed=seed))
                    seconds[f"attack.{fmt}"] = time.perf_counter() - started
        out.mkdir(parents=True, exist_ok=True)
        trials = pd.DataFrame(rows)
        trials.to_parquet(out / "trials.parquet", index=False)
        if attack:
            pd.DataFrame(attack_rows).to_parquet(out / "attack.parquet", index=False)
        collapses = trials.groupby(["format", "rate", "arm"])["collapsed"].agg(["sum", "count"]).reset_index()
        write_json(out / "summary.json", {
            "seed": seed, "baseline_ppl": baselines,
            "n_critical": sum(len(v) for v in cells.values()),
            "collapses": [{"format": r.format, "rate": float(r.rate), "arm": r.arm, "collapsed": int(r["sum"]),
                           "trials": int(r["count"])} for _, r in collapses.iterrows()],
            "flips_to_collapse": _flips_to_collapse(attack_rows),
            "seconds": {k: round(v, 3) for k, v in seconds.items()}})
        for name, value in seconds.items():
            manifest.time(name, value)
        manifest.set(seed=seed, device=str(device), n_trials=len(rows), **loaded.record)
    return 0


def _flips_to_collapse(attack_rows: list[dict]) -> list[dict]:
    """Per (format, arm): the step of the first collapse, or None when the budget ran out first (censored)."""
    out: dict[tuple[str, str], dict] = {}
    for row in attack_rows:
        entry = out.setdefault((row["format"], row["arm"]), {"format": row["format"], "arm": row["arm"],
                                                             "flips_to_collapse": None, "flips": 0})
        entry["flips"] = max(entry["flips"], int(row["step"]))
        if row["collapsed"] and entry["flips_to_collapse"] is None:
            entry["flips_to_collapse"] = int(row["step"])
    return list(out.values())


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="faults run", seed=True, spec=True)
    parser.add_argument("--part", required=True, type=int, help="this seed's part of the calibration split")
    parser.add_argument("--critical", required=True, type=Path, help="the score run folder of the critical set")
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params, args.critical)
    except (KeyError, OSError) as exc:
        return bad_input("faults", exc)

    from esa.engine.models.stage_load import stage_model

    loaded = stage_model("faults", params, args.seed)
    if isinstance(loaded, int):
        return loaded
    loaded, device = loaded
    return faults_seed(loaded, device, params, seed=args.seed, part=args.part, critical_dir=args.critical,
                       out=args.out, spec=args.spec)


if __name__ == "__main__":
    sys.exit(main())
