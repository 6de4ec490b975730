"""The cloze probe data: sizes, answers of the right kind, and how many survive single-token filtering with this
project's tokenizer recipe at the embedded models' vocabulary size."""

from __future__ import annotations

import builtins
import json
import keyword
import sys

import pytest

from esa.engine.data.tokenizer import train_tokenizer
from esa.engine.interpret.cloze import prepare_probes
from esa.engine.interpret.probes import BUILTIN, FACTS, KEYWORD, PROBES, PYTHON_CATEGORIES, STDLIB
from esa.registry import LADDER_RECIPE


def test_categories_have_the_planned_sizes_and_no_repeated_item():
    for name in PYTHON_CATEGORIES:
        assert 15 <= len(PROBES[name]) <= 30, name
    assert 15 <= len(FACTS) <= 30
    for items in PROBES.values():
        assert len(set(items)) == len(items)
        assert all(prompt and answer.strip() for prompt, answer in items)


def test_answers_are_what_their_category_says():
    assert all(keyword.iskeyword(answer.strip()) for _, answer in KEYWORD)
    assert all(hasattr(builtins, answer.strip()) for _, answer in BUILTIN)
    assert all(answer.strip() in sys.stdlib_module_names for _, answer in STDLIB)


@pytest.fixture(scope="module")
def project_tokenizer(tiny_corpus):
    texts = [json.loads(line)["text"] for line in (tiny_corpus / "train.jsonl").open()]
    return train_tokenizer(texts, LADDER_RECIPE["vocab_size"], LADDER_RECIPE["max_position_embeddings"])


def test_most_python_items_are_single_tokens_for_the_project_tokenizer(project_tokenizer):
    probes = prepare_probes(project_tokenizer, PYTHON_CATEGORIES)
    summary = probes.summary().set_index("category")
    assert summary["n_items"].to_dict() == {c: len(PROBES[c]) for c in PYTHON_CATEGORIES}
    assert (summary["n_kept"] + summary["n_dropped"] == summary["n_items"]).all()
    assert (summary["n_kept"] >= 0.75 * summary["n_items"]).all(), summary
    for p in probes.probes:
        ids = project_tokenizer.encode(p.prompt + p.answer, add_special_tokens=True)
        assert ids == [*p.context_ids, p.answer_id]
        assert project_tokenizer.decode([p.answer_id]) == p.answer
