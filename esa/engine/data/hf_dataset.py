"""Documents from a Hugging Face dataset, read through ``datasets.load_dataset`` (from its cache when offline).

Rows are not always documents: WikiText's rows are lines, and an article is the run of rows from one
`` = Title = `` heading to the next. ``group`` makes that explicit, so splits stay disjoint by article.
"""

from __future__ import annotations

import os
import re

from tqdm import tqdm

from esa.configs import HFDatasetCorpus

GROUPS = ("rows", "wikitext_articles")
# A level-1 WikiText heading (" = Title = "); level 2 and deeper (" = = Section = = ") stay inside the article.
WIKITEXT_TITLE = re.compile(r"^ = ([^=](?:.*[^=])?) = ?$")


class HFDatasetError(ValueError):
    """A dataset that cannot be read: `datasets` missing, not in the cache offline, no such split or field."""


def download_hint(cfg: HFDatasetCorpus) -> str:
    """The one command that puts the dataset in the cache (run once with network)."""
    args = ", ".join(repr(a) for a in (cfg.dataset, cfg.config) if a)
    revision = f", revision={cfg.revision!r}" if cfg.revision else ""
    return f'python -c "import datasets; datasets.load_dataset({args}{revision})"'


def _load_split(datasets, cfg: HFDatasetCorpus, split: str):
    name = f"'{cfg.dataset}'" + (f" ({cfg.config})" if cfg.config else "")
    try:
        return datasets.load_dataset(cfg.dataset, cfg.config or None, split=split, revision=cfg.revision or None)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise HFDatasetError(f"splits: dataset {name} has no split '{split}' ({_first_line(exc)})") from None
        raise HFDatasetError(f"dataset {name}: {_first_line(exc)}") from None
    except Exception as exc:  # offline cache miss, unknown id, gated repo: all need the same action
        cache = os.environ.get("HF_DATASETS_CACHE", "~/.cache/huggingface/datasets")
        raise HFDatasetError(
            f"dataset {name} is not in the datasets cache ({cache}) and could not be downloaded "
            f"({type(exc).__name__}: {_first_line(exc)}); with network (HF_HUB_OFFLINE unset), run once: "
            f"{download_hint(cfg)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _rows_as_lines(rows: list[str]) -> str:
    """WikiText rows carry their own newline; an empty row is a blank line."""
    return "".join(row if row.endswith("\n") else row + "\n" for row in rows)


def group_rows(texts: list[str], group: str, prefix: str) -> dict[str, str]:
    """Documents (id -> text) of one split's rows: each non-empty row, or WikiText articles by heading."""
    if group == "rows":
        return {f"{prefix}/{i:07d}": text for i, text in enumerate(texts) if text.strip()}
    if group != "wikitext_articles":
        raise HFDatasetError(f"group: unknown grouping '{group}' (known: {', '.join(GROUPS)})")
    articles: list[tuple[str, list[str]]] = [("(before the first heading)", [])]
    for text in texts:
        title = WIKITEXT_TITLE.match(text.rstrip("\n"))
        if title:
            articles.append((title.group(1).strip(), []))
        articles[-1][1].append(text)
    docs: dict[str, str] = {}
    for title, rows in articles:
        body = _rows_as_lines(rows).strip("\n")
        if not body.strip():
            continue
        doc_id, n = f"{prefix}/{title}", 2
        while doc_id in docs:  # a title used twice keeps both articles apart
            doc_id, n = f"{prefix}/{title} ({n})", n + 1
        docs[doc_id] = body
    return docs


def hf_documents(cfg: HFDatasetCorpus) -> tuple[dict[str, str], dict]:
    """(documents id -> text, the source record for splits.json) from every split of ``cfg.splits``, pooled."""
    try:
        import datasets
    except ImportError:
        raise HFDatasetError("the `datasets` package is not installed: pip install 'esa[hf]' "
                             "(or pip install datasets)") from None
    if cfg.group not in GROUPS:
        raise HFDatasetError(f"group: unknown grouping '{cfg.group}' (known: {', '.join(GROUPS)})")
    datasets.disable_progress_bars()  # its per-file bars would drown the one below
    docs: dict[str, str] = {}
    rows: dict[str, int] = {}
    for split in cfg.splits:
        table = _load_split(datasets, cfg, split)
        if cfg.text_field not in table.column_names:
            raise HFDatasetError(f"text_field: dataset '{cfg.dataset}' split '{split}' has no column "
                                 f"'{cfg.text_field}' (columns: {', '.join(table.column_names)})")
        texts = [text or "" for text in tqdm(table[cfg.text_field], desc=f"reading {split}", unit="row")]
        rows[split] = len(texts)
        docs.update(group_rows(texts, cfg.group, split))
    source = {"kind": "hf_dataset", "dataset": cfg.dataset, "config": cfg.config, "splits": list(cfg.splits),
              "rows": rows, "group": cfg.group, "datasets": datasets.__version__}
    return docs, {"source": source}
