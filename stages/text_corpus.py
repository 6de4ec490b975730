"""Stage: build a spec's own corpus (local text files or a Hugging Face dataset) and its disjoint splits.

    python stages/text_corpus.py --key corpora.mytext --out data/mytext

Documents go through the same split, hash and manifest path as the registry's corpora (esa.engine.data.corpus);
only where they come from differs. Relative local paths start at the working directory: the project root.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.configs import HFDatasetCorpus, LocalTextCorpus, corpus_config  # noqa: E402
from esa.engine.data.corpus import SPLITS, collapse_duplicates, validate_config, write_splits  # noqa: E402
from esa.stageio import Manifest, bad_input, load_params, stage_parser  # noqa: E402


def documents(cfg) -> tuple[dict[str, str], dict]:
    """(id -> text, source record) of a local_text or hf_dataset corpus."""
    if isinstance(cfg, LocalTextCorpus):
        from esa.engine.data.local_text import local_documents

        return local_documents(cfg)
    if isinstance(cfg, HFDatasetCorpus):
        from esa.engine.data.hf_dataset import hf_documents

        return hf_documents(cfg)
    raise ValueError(f"corpus '{cfg.name}' names no kind (local_text or hf_dataset); registry corpora are built "
                     f"by stages/corpus.py")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, what="corpus")
    args = parser.parse_args(argv)
    stage = f"corpus {args.key.rsplit('.', 1)[-1]}"
    try:
        params = load_params(args.key, args.params)
        cfg = corpus_config(params)
        validate_config(cfg)
        docs, source = documents(cfg)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        return bad_input(stage, exc)

    with Manifest(args.out, params=params, stage="corpus") as manifest:
        docs = collapse_duplicates(docs)
        summary = write_splits(docs, cfg, args.out, source)
        manifest.set(
            disjoint=summary["disjoint"], source=source["source"],
            splits={s: {k: summary[s][k] for k in ("n_docs", "n_bytes", "sha256")} for s in SPLITS},
        )
    empty = [s for s in SPLITS if not summary[s]["n_docs"]]
    if empty:  # an eval-only corpus may leave train empty; stages reading an empty split fail there
        print(f"warning: {stage}: no documents in the {' and '.join(empty)} split ({len(docs)} in all); if a run "
              f"reads it, add documents, split the text finer (separator, group) or raise its fraction or byte cap",
              file=sys.stderr)
    counts = ", ".join(f"{s} {summary[s]['n_docs']} docs / {summary[s]['n_bytes']} B" for s in SPLITS)
    print(f"corpus {cfg.name}: {len(docs)} documents; {counts}; disjoint={summary['disjoint']}")
    skipped = source["source"].get("skipped")
    if skipped:
        print("skipped files: " + ", ".join(f"{len(files)} {reason}" for reason, files in skipped.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
