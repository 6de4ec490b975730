"""Stage: what the critical weights do inside the model — super weights and their massive activations, critical
weights per attention head, and cloze probes under critical-weight ablation.

    python stages/interpret.py --key security.interpret --seed 1337 \
        --critical results/phase2/gradient/seed1337 --spec specs/interpret.yaml --out results/interpret/probe/seed1337

The data-free detector finds the super weights on its fixed prompt. For each: the residual stream at the dimension
it writes, layer by layer, with the weight in place and zeroed (activations.parquet), and on this seed's held-out
windows the NLL and the attention-sink mass per layer in both conditions (windows.parquet). Per attention head: its
entropy and sink share on the same windows and its critical weights in q/k/v/o (heads.parquet). Every probe item
scored with the model as is, with the top ``ablate_k`` critical weights of every matrix zeroed, and with matched
random sets zeroed (probes.parquet). Every change is restored bit for bit (checksum-verified).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import Manifest, bad_input, load_params, seed_part, stage_parser, write_json  # noqa: E402

REQUIRED = ("model", "data", "probes", "ablate_k", "n_random", "superweight_threshold", "context", "stride",
            "max_windows", "batch_size", "critical", "seed_plan")


def read_params(key: str, path, critical: Path) -> dict:
    """The run's params, checked, and the critical set's presence: an error before any model is loaded."""
    params = load_params(key, path)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    if not (critical / "topk.parquet").exists():
        raise KeyError(f"{critical / 'topk.parquet'} does not exist (the critical set's score run has not run)")
    return params


def critical_table(path: Path, rule: dict):
    """The critical set's rows of a top-k artifact: one metric and mode, rank < k when k is given."""
    import pandas as pd

    table = pd.read_parquet(path)
    table = table[(table["metric"] == rule["metric"]) & (table["mode"] == rule["mode"])]
    if rule.get("k") is not None:
        table = table[table["rank"] < int(rule["k"])]
    if table.empty:
        raise ValueError(f"{path} stores no {rule['metric']} weights in {rule['mode']} mode")
    return table.reset_index(drop=True)


def window_rows(model, prepared, ids, mask, condition: str, batch_size: int, device) -> list[dict]:
    """One row per window and layer: the window's NLL (repeated) and its sink mass at that layer."""
    from esa.engine.evaluation.evaluate import evaluate_windows
    from esa.engine.interpret.sinks import window_sinks

    frame = evaluate_windows(model, prepared, batch_size=batch_size, device=device, progress=False)[1]
    sinks = window_sinks(model, ids, mask, batch_size=batch_size)
    return [{"condition": condition, "window_id": w.window_id, "doc_id": w.doc_id, "n_tokens": int(w.n_tokens),
             "nll_sum": float(w.nll_sum), "layer": layer, "sink": float(sinks[i, layer])}
            for i, w in enumerate(frame.itertuples()) for layer in range(sinks.shape[1])]


def interpret_seed(loaded, device, params: dict, *, seed: int, critical_dir: Path, out: Path,
                   spec: str | None) -> int:
    import pandas as pd
    import torch

    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import _batch_inputs, prepare_windows
    from esa.engine.interpret.cloze import prepare_probes, probe_ablation
    from esa.engine.interpret.heads import HeadGeometry, critical_head_counts, head_attention_stats
    from esa.engine.interpret.massive import massive_activations, zeroed
    from esa.engine.scoring.superweight import SUPERWEIGHT_PROMPT, detect_superweights

    torch.manual_seed(seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    model.eval()
    batch = int(params["batch_size"])
    try:
        critical = critical_table(critical_dir / "topk.parquet", params["critical"])
        folds, fold = seed_part(params, seed)
        docs = load_split(Path(params["data"]), "evaluation")
        probe_set = prepare_probes(tokenizer, params["probes"])
    except (ValueError, OSError, KeyError) as exc:
        return bad_input("interpret", exc)
    prepared = prepare_windows(tokenizer, docs, context=int(params["context"]), stride=int(params["stride"]),
                               max_windows=int(params["max_windows"]), seed=seed, folds=folds, fold=fold)
    ids, mask = _batch_inputs(prepared.tokenized, prepared.windows, prepared.pad_id, torch.device(device))
    prompt = torch.tensor(tokenizer(SUPERWEIGHT_PROMPT)["input_ids"], dtype=torch.long)
    with Manifest(out, params=params, spec=spec, stage="interpret") as manifest:
        report = detect_superweights(model, prompt, threshold=float(params["superweight_threshold"]))
        activations, windows = [], window_rows(model, prepared, ids, mask, "baseline", batch, device)
        for i, candidate in enumerate(report.candidates):
            activations.append(massive_activations(model, prompt, candidate).assign(weight=i))
            with zeroed(model, candidate.param_name, candidate.row, candidate.col, expert=candidate.expert):
                windows += window_rows(model, prepared, ids, mask, f"zeroed:{i}", batch, device)
        heads = head_attention_stats(model, ids, mask, batch_size=batch).merge(
            critical_head_counts(critical, HeadGeometry.of(model)), on=["layer", "head"], how="left")
        probes = probe_ablation(model, probe_set, critical, int(params["ablate_k"]), n_random=int(params["n_random"]),
                                seed=seed, batch_size=batch, pad_id=prepared.pad_id)
        out.mkdir(parents=True, exist_ok=True)
        columns = ["layer", "condition", "token", "value", "abs_value", "other_max_abs", "ratio", "sink_share",
                   "weight", "param_name", "row", "col"]
        (pd.concat(activations, ignore_index=True) if activations else pd.DataFrame(columns=columns)).to_parquet(
            out / "activations.parquet", index=False)
        pd.DataFrame(windows).to_parquet(out / "windows.parquet", index=False)
        heads.to_parquet(out / "heads.parquet", index=False)
        probes.to_parquet(out / "probes.parquet", index=False)
        write_json(out / "summary.json", {
            "seed": seed, "superweights": [{"weight": i, "layer": c.layer, "param_name": c.param_name, "row": c.row,
                                            "col": c.col, "weight_value": c.weight_value,
                                            "output_ratio": c.output_ratio} for i, c in enumerate(report.candidates)],
            "detector": report.summary(), "n_critical": len(critical), "probes": probe_set.summary().to_dict("records"),
            "n_windows": len(prepared.windows), "folds": folds, "fold": fold})
        manifest.set(seed=seed, device=str(device), n_superweights=len(report.candidates), **loaded.record)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="interpret run", seed=True, spec=True)
    parser.add_argument("--critical", required=True, type=Path, help="the score run folder of the critical set")
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params, args.critical)
    except (KeyError, OSError) as exc:
        return bad_input("interpret", exc)

    from esa.engine.models.stage_load import stage_model

    loaded = stage_model("interpret", params, args.seed)
    if isinstance(loaded, int):
        return loaded
    loaded, device = loaded
    return interpret_seed(loaded, device, params, seed=args.seed, critical_dir=args.critical, out=args.out,
                          spec=args.spec)


if __name__ == "__main__":
    sys.exit(main())
