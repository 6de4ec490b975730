"""Stage: one seed's siblings of a base model, fine-tuned with their own seeds, half of them on text carrying a
trigger→target backdoor; each sibling's attack success and sensitivity map on clean calibration text.

    python stages/fingerprint.py --key fingerprint.siblings --seed 1337 --spec specs/fingerprint.yaml \
        --out results/fingerprint/siblings/seed1337

The run seed draws which half of the siblings is poisoned and each sibling's training seed. Training texts are the
train split cut into pieces of ``piece_lines`` lines (so the poisoning rate counts pieces, not whole files); the
calibration windows (this seed's part of the calibration split) and the trigger prompts (evaluation split) are the
same for the base model and every sibling. Writes siblings.parquet (one row per sibling, and one for the base
model: poisoned, seeds, attack success with and without the trigger, calibration loss, shift from the base model's
top-k set), profiles.parquet (each sibling's share of score mass per matrix), summary.json and manifest.json. The
base model is copied for each sibling; the model on disk is never written.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import Manifest, bad_input, load_params, seed_part, stage_parser, write_json  # noqa: E402

REQUIRED = ("model", "data", "siblings", "steps", "learning_rate", "batch_size", "seq_len", "piece_lines",
            "backdoor", "metric", "k", "windows", "prompts", "context", "seed_plan")


def read_params(key: str, path) -> dict:
    """The run's params, checked before any model is loaded."""
    params = load_params(key, path)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise KeyError(f"params at '{key}' lack {', '.join(missing)}")
    n = int(params["siblings"])
    if n < 4 or n % 2:
        raise ValueError(f"siblings must be even and at least 4, got {n}")
    return params


def sibling_plan(seed: int, n: int) -> list[tuple[int, bool, int]]:
    """(sibling, poisoned, training seed) for each sibling: the run seed draws which half is poisoned, and the
    training seeds differ between siblings and between run seeds."""
    rng = random.Random(seed)
    poisoned = set(rng.sample(range(n), n // 2))
    return [(i, i in poisoned, rng.randrange(2**31)) for i in range(n)]


def pieces(texts: list[str], lines: int) -> list[str]:
    """Texts cut into consecutive pieces of ``lines`` lines; blank pieces dropped."""
    out = []
    for text in texts:
        rows = text.splitlines(keepends=True)
        out += ["".join(rows[i: i + lines]) for i in range(0, len(rows), lines)]
    return [p for p in out if p.strip()]


def calibration_loss(model, windows) -> float:
    """Mean next-token loss over the calibration windows (a sibling that merely trained further shows here)."""
    import torch

    with torch.no_grad():
        device = next(model.parameters()).device
        losses = [model(input_ids=w[None].to(device), labels=w[None].to(device)).loss.item() for w in windows]
    return float(sum(losses) / len(losses))


def fingerprint_seed(loaded, params: dict, *, seed: int, out: Path, spec: str | None) -> int:
    import numpy as np
    import pandas as pd
    import torch
    from tqdm import tqdm

    from esa.engine.backdoor import (Backdoor, attack_success, finetune_sibling, matrix_profile, poison_texts,
                                     sensitivity_map, shift_score, trigger_prompts)
    from esa.engine.data.batches import calibration_draw
    from esa.engine.data.corpus import load_split

    torch.manual_seed(seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    model.eval()
    metric, k = str(params["metric"]), int(params["k"])
    pad_id = tokenizer.pad_token_id or 0
    try:
        backdoor = Backdoor(**params["backdoor"])
        folds, fold = seed_part(params, seed)
        data = Path(params["data"])
        train = pieces([d["text"] for d in load_split(data, "train")], int(params["piece_lines"]))
        prompts = trigger_prompts([d["text"] for d in load_split(data, "evaluation")], backdoor,
                                  int(params["prompts"]), random.Random(seed))
        windows, draw = calibration_draw(tokenizer, load_split(data, "calibration"), context=int(params["context"]),
                                         max_windows=int(params["windows"]), seed=seed, folds=folds, fold=fold)
        poison_texts(train, backdoor, random.Random(0))  # raises now if the corpus already holds the trigger
    except (ValueError, OSError, KeyError, TypeError) as exc:
        return bad_input("fingerprint", exc)

    def measure(net) -> tuple[dict, object]:
        score_map = sensitivity_map(net, windows, metric, seed=seed, pad_id=pad_id)
        return {**attack_success(net, tokenizer, prompts), "calibration_loss": calibration_loss(net, windows)}, \
            score_map

    with Manifest(out, params=params, spec=spec, stage="fingerprint") as manifest:
        base_row, base_map = measure(model)
        total = sum(m.numel() for m in base_map.values())
        if k > total:
            return bad_input("fingerprint", ValueError(f"k = {k} exceeds the {total} weights the map scores"))
        names = sorted(base_map)
        rows = [{"sibling": -1, "role": "base", "poisoned": False, "train_seed": None, "n_poisoned": 0,
                 **base_row, "shift": 0.0}]
        profiles = [matrix_profile(base_map)]
        for i, poisoned, train_seed in tqdm(sibling_plan(seed, int(params["siblings"])), desc=f"siblings seed {seed}",
                                            unit="sibling"):
            texts, n_poisoned = poison_texts(train, backdoor, random.Random(train_seed)) if poisoned else (train, 0)
            sibling = finetune_sibling(model, tokenizer, texts, steps=int(params["steps"]),
                                       lr=float(params["learning_rate"]), batch_size=int(params["batch_size"]),
                                       seq_len=int(params["seq_len"]), seed=train_seed)
            row, score_map = measure(sibling)
            rows.append({"sibling": i, "role": "sibling", "poisoned": poisoned, "train_seed": train_seed,
                         "n_poisoned": n_poisoned, **row, "shift": shift_score(score_map, base_map, k)})
            profiles.append(matrix_profile(score_map))
            del sibling, score_map
        out.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame(rows).assign(seed=seed)
        table["train_seed"] = table["train_seed"].astype("Int64")
        table.to_parquet(out / "siblings.parquet", index=False)
        shares = np.vstack(profiles)
        pd.DataFrame([{"sibling": r["sibling"], "matrix": name, "share": float(shares[j, m])}
                      for j, r in enumerate(rows) for m, name in enumerate(names)]).to_parquet(
            out / "profiles.parquet", index=False)
        write_json(out / "summary.json", {
            "seed": seed, "metric": metric, "k": k, "n_scored": total, "n_matrices": len(names),
            "n_siblings": int(params["siblings"]), "n_train_pieces": len(train), "n_prompts": len(prompts),
            "n_windows": len(windows), "backdoor": params["backdoor"],
            "sampling": {k: v for k, v in draw.record().items() if k != "window_ids"}})
        manifest.set(seed=seed, n_siblings=int(params["siblings"]), **loaded.record)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="fingerprint run", seed=True, spec=True)
    args = parser.parse_args(argv)
    try:
        params = read_params(args.key, args.params)
    except (KeyError, OSError, ValueError) as exc:
        return bad_input("fingerprint", exc)

    from esa.engine.models.stage_load import stage_model

    loaded = stage_model("fingerprint", params, args.seed)
    if isinstance(loaded, int):
        return loaded
    loaded, _ = loaded
    return fingerprint_seed(loaded, params, seed=args.seed, out=args.out, spec=args.spec)


if __name__ == "__main__":
    sys.exit(main())
