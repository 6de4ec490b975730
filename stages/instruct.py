"""Stage: fine-tune a reference model on docstring → function pairs from the corpus train split (chat template).

    python stages/instruct.py --key instruct_models.ref-s-instruct --base models/ref-s --corpus data/stdlib \
        --out models/ref-s-instruct
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.configs import InstructModel  # noqa: E402
from esa.engine.models.instruct import build_instruct  # noqa: E402
from esa.engine.models.loading import quiet_hub_progress  # noqa: E402
from esa.stageio import Manifest, bad_input, load_params, sha256_file, stage_parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="instruct model")
    parser.add_argument("--base", required=True, type=Path, help="base model directory (output of stages/reference.py)")
    parser.add_argument("--corpus", required=True, type=Path, help="corpus directory (output of stages/corpus.py)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.key, args.params)
        cfg = InstructModel(**params)
        if cfg.train_steps < 1 or cfg.batch_size < 1 or cfg.seq_len < 8 or not cfg.learning_rate > 0:
            raise ValueError(f"{cfg.name}: train_steps, batch_size, seq_len and learning_rate must be positive")
        # A base trained by the reference stage records its corpus and tokenizer; any other base records none.
        base_manifest_path = args.base / "manifest.json"
        base_manifest = json.loads(base_manifest_path.read_text()) if base_manifest_path.is_file() else {}
        splits = json.loads((args.corpus / "splits.json").read_text())
    except (KeyError, TypeError, OSError, ValueError) as exc:
        return bad_input("instruct", exc, "bad params, base model or corpus")

    quiet_hub_progress()
    with Manifest(args.out, params=params, stage="instruct") as manifest:
        log = build_instruct(cfg, args.base, args.corpus, args.out)
        manifest.set(
            device="cpu",
            dtype="float32",
            n_params=log["n_params"],
            n_params_non_embedding=base_manifest.get("n_params_non_embedding"),
            n_params_active_non_embedding=base_manifest.get("n_params_active_non_embedding"),
            architecture=base_manifest.get("architecture", "llama"),
            base=str(args.base),
            base_weights_sha256=sha256_file(args.base / "model.safetensors"),
            base_train_sha256=base_manifest.get("corpus_train_sha256"),
            corpus_train_sha256=splits["train"]["sha256"],
            tokenizer_sha256=base_manifest.get("tokenizer_sha256"),
            chat_template=True,
            train={k: v for k, v in log.items() if k not in ("loss_curve", "config")},
        )
        manifest.time("train", log["wall_time_s"])
    b, a = log["base_heldout"], log["instruct_heldout"]
    print(f"instruct {cfg.name}: {log['train_pairs']} pairs, {log['steps']} steps in {log['wall_time_s']:.1f}s; "
          f"held-out response loss {b['response_loss']:.3f} → {a['response_loss']:.3f}, "
          f"text loss {b['text_loss']:.3f} → {a['text_loss']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
