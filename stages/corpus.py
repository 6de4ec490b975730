"""Stage: build the text corpus and its disjoint train / calibration / evaluation splits.

    python stages/corpus.py --key corpora.stdlib --out data/stdlib
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.engine.data.corpus import SPLITS, build_corpus, validate_config  # noqa: E402
from esa.configs import CorpusConfig  # noqa: E402
from esa.stageio import Manifest, bad_input, load_params, stage_parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="corpus")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.key, args.params)
        cfg = CorpusConfig(**params)
        validate_config(cfg)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        return bad_input("corpus", exc, "bad params")

    with Manifest(args.out, params=params, stage="corpus") as manifest:
        summary = build_corpus(cfg, args.out)
        manifest.set(
            disjoint=summary["disjoint"],
            splits={s: {k: summary[s][k] for k in ("n_docs", "n_bytes", "sha256")} for s in SPLITS},
        )
    counts = ", ".join(f"{s} {summary[s]['n_docs']} docs / {summary[s]['n_bytes']} B" for s in SPLITS)
    print(f"corpus {cfg.name}: {counts}; disjoint={summary['disjoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
