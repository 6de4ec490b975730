"""Stage: train a reference model (tokenizer + small Llama) on the corpus train split.

    python stages/reference.py --key reference_models.ref-s --corpus data/stdlib --out models/ref-s
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.engine.models.loading import quiet_hub_progress  # noqa: E402
from esa.engine.models.reference import build_reference, validate_config  # noqa: E402
from esa.configs import reference_config  # noqa: E402
from esa.stageio import Manifest, bad_input, load_params, sha256_file, stage_parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="model")
    parser.add_argument("--corpus", required=True, type=Path, help="corpus directory (output of stages/corpus.py)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.key, args.params)
        cfg = reference_config(params)
        validate_config(cfg)
        splits = json.loads((args.corpus / "splits.json").read_text())
    except (KeyError, TypeError, OSError, ValueError) as exc:
        return bad_input("reference", exc, "bad params or corpus")

    quiet_hub_progress()
    with Manifest(args.out, params=params, stage="reference") as manifest:
        log = build_reference(cfg, args.corpus, args.out)
        manifest.set(
            device="cpu",
            dtype="float32",
            n_params=log["n_params"],
            n_params_non_embedding=log["n_params_non_embedding"],
            n_params_active_non_embedding=log["n_params_active_non_embedding"],
            architecture="mixtral" if "num_experts" in params else "llama",
            tokenizer_sha256=sha256_file(args.out / "tokenizer.json"),
            corpus=str(args.corpus),
            corpus_train_sha256=splits["train"]["sha256"],
            corpus_disjoint=splits.get("disjoint", False),
            train={k: v for k, v in log.items() if k not in ("loss_curve", "config")},
        )
        manifest.time("train", log["wall_time_s"])
    held = f", held-out (calibration) loss {log['heldout_loss']:.3f}" if "heldout_loss" in log else ""
    print(f"reference {cfg.name}: {log['n_params']} params, {log['steps']} steps in {log['wall_time_s']:.1f}s, "
          f"final train loss {log['final_train_loss']:.3f}{held}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
