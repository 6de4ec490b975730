"""Corpora from Hugging Face datasets: rows grouped into documents (WikiText articles), read offline from the
datasets cache; a dataset the cache lacks, or a missing `datasets` package, is one line naming what to get."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from esa.configs import HFDatasetCorpus
from esa.engine.data.corpus import SPLITS, collapse_duplicates, load_split, write_splits
from esa.engine.data.hf_dataset import HFDatasetError, download_hint, group_rows, hf_documents

REPO = Path(__file__).resolve().parents[2]
# WikiText-2 raw, as its rows come: lines with their newline, blank lines as empty rows, sections inside articles.
WIKITEXT_ROWS = ["", " = Valkyria Chronicles III = \n", "", " Senjō no Valkyria 3 is a game .\n", "",
                 " = = Gameplay = = \n", "", " As with previous games .\n", "", " = Tower Building = \n", "",
                 " The tower is tall .\n", " = = = History = = = \n", " Built in 1900 .\n"]


def wikitext_like(folder: Path, articles: dict[str, int]) -> Path:
    """A local dataset folder (one JSON-lines file per split) whose rows are WikiText-style lines."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in articles.items():
        rows = [""]
        for a in range(n):
            rows += [f" = {split.title()} article {a} = \n", "", f" Text of {split} article {a} .\n", "",
                     " = = Section = = \n", f" More about {a} .\n", ""]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"text": row}) + "\n" for row in rows))
    return folder


def test_wikitext_rows_group_into_articles_at_level_one_headings():
    docs = group_rows(WIKITEXT_ROWS, "wikitext_articles", "train")
    assert list(docs) == ["train/Valkyria Chronicles III", "train/Tower Building"]
    assert docs["train/Valkyria Chronicles III"] == (
        " = Valkyria Chronicles III = \n\n Senjō no Valkyria 3 is a game .\n\n = = Gameplay = = \n\n"
        " As with previous games .")
    assert " = = = History = = = " in docs["train/Tower Building"]


def test_rows_grouping_keeps_each_non_empty_row_and_titles_stay_apart():
    assert group_rows(["a\n", "", " \n", "b"], "rows", "test") == {"test/0000000": "a\n", "test/0000003": "b"}
    twice = group_rows([" = A = \n", "x\n", " = A = \n", "y\n"], "wikitext_articles", "train")
    assert list(twice) == ["train/A", "train/A (2)"]
    with pytest.raises(HFDatasetError, match="group: unknown grouping 'lines'"):
        group_rows([], "lines", "train")


def run_stage(tmp_path: Path, params: dict, env: dict) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"corpora": {params["name"]: params}}))
    return subprocess.run([sys.executable, str(REPO / "stages/text_corpus.py"), "--key", f"corpora.{params['name']}",
                           "--out", "data/out"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def offline_env(tmp_path: Path) -> dict:
    """A datasets cache and hub cache that hold nothing, and no network."""
    return {"HF_DATASETS_CACHE": str(tmp_path / "empty-cache"), "HF_HOME": str(tmp_path / "empty-home"),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def test_a_dataset_missing_from_the_cache_fails_with_one_line_naming_the_download(tmp_path):
    cfg = HFDatasetCorpus(name="wiki", dataset="wikitext", config="wikitext-2-raw-v1",
                          group="wikitext_articles")
    proc = run_stage(tmp_path, cfg.params(), offline_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    if importlib.util.find_spec("datasets") is None:
        assert "pip install 'esa[hf]'" in lines[0]
    else:
        assert lines[0].startswith("corpus wiki: dataset 'wikitext' (wikitext-2-raw-v1) is not in the datasets cache")
        assert lines[0].endswith(
            """python -c "import datasets; datasets.load_dataset('wikitext', 'wikitext-2-raw-v1')\"""")
    assert not (tmp_path / "data/out/splits.json").exists()


def test_without_the_datasets_package_the_error_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    with pytest.raises(HFDatasetError, match=r"^the `datasets` package is not installed: pip install 'esa\[hf\]'"):
        hf_documents(HFDatasetCorpus(name="wiki", dataset="wikitext"))


def test_download_hint_names_config_and_revision():
    cfg = HFDatasetCorpus(name="w", dataset="org/data", config="c1", revision="v2")
    assert download_hint(cfg) == """python -c "import datasets; datasets.load_dataset('org/data', 'c1', revision='v2')\""""


def test_a_local_dataset_goes_through_datasets_and_the_shared_splits(tmp_path, monkeypatch):
    pytest.importorskip("datasets", reason="the hf_dataset corpus needs `pip install datasets` (extra: hf)")
    for key, value in offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    folder = wikitext_like(tmp_path / "wt", {"train": 30, "validation": 5, "test": 5})
    cfg = HFDatasetCorpus(name="wt", dataset=str(folder), splits=["train", "validation", "test"],
                          group="wikitext_articles", calibration_fraction=0.2, evaluation_fraction=0.2)
    docs, source = hf_documents(cfg)
    assert len(docs) == 40 and "validation/Validation article 3" in docs
    assert source["source"]["rows"] == {"train": 211, "validation": 36, "test": 36}
    summary = write_splits(collapse_duplicates(docs), cfg, tmp_path / "out", source)
    assert summary["disjoint"] and all(summary[s]["n_docs"] for s in SPLITS)
    ids = [row["id"] for s in SPLITS for row in load_split(tmp_path / "out", s)]
    assert sorted(ids) == sorted(docs)  # each article whole, in exactly one split

    with pytest.raises(HFDatasetError, match="^splits: dataset .* has no split 'dev'"):
        hf_documents(HFDatasetCorpus(name="wt", dataset=str(folder), splits=["dev"]))
    with pytest.raises(HFDatasetError, match="^text_field: dataset .* has no column 'body' \\(columns: text\\)"):
        hf_documents(HFDatasetCorpus(name="wt", dataset=str(folder), text_field="body"))


def test_the_stage_builds_a_local_dataset_offline(tmp_path):
    pytest.importorskip("datasets", reason="the hf_dataset corpus needs `pip install datasets` (extra: hf)")
    folder = wikitext_like(tmp_path / "wt", {"train": 20, "test": 10})
    cfg = HFDatasetCorpus(name="wt", dataset=str(folder), splits=["train", "test"], group="wikitext_articles",
                          calibration_fraction=0.25, evaluation_fraction=0.25)
    proc = run_stage(tmp_path, cfg.params(), offline_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "corpus wt: 30 documents" in proc.stdout
    manifest = json.loads((tmp_path / "data/out/manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["disjoint"] is True
    assert manifest["source"]["group"] == "wikitext_articles"
