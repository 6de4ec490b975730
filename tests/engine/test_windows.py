from __future__ import annotations

import numpy as np
import pytest

from esa.engine.data.windows import TokenizedDoc, draw_windows, make_windows, sample_windows, tokenize_docs


def _docs(lengths: list[int]) -> list[TokenizedDoc]:
    return [TokenizedDoc(f"d{i}", list(range(n)), [1 + (j % 3) for j in range(n)]) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("context,stride", [(8, 4), (8, 7), (8, 1), (16, 5), (2, 1), (256, 128)])
def test_every_token_but_the_first_scored_exactly_once(context, stride):
    docs = _docs([0, 1, 2, 3, 7, 8, 9, 16, 17, 100, 301])
    windows = make_windows(docs, context, stride)
    counts = [np.zeros(len(d.ids), dtype=int) for d in docs]
    for w in windows:
        assert 0 < w.n_scored <= w.length - 1 and w.length <= context
        first = w.end - w.n_scored
        counts[w.doc][first: w.end] += 1
        # Scored tokens see all the left context the window can give them.
        assert first - w.start >= min(first, context - stride)
        assert w.n_scored_bytes == sum(docs[w.doc].token_bytes[first: w.end])
    for doc, c in zip(docs, counts):
        if len(doc.ids):
            assert c[0] == 0
        assert (c[1:] == 1).all(), doc.doc_id


def test_hf_scheme_layout():
    windows = make_windows(_docs([20]), context=8, stride=4)
    assert [(w.start, w.end, w.n_scored) for w in windows] == [(0, 8, 7), (4, 12, 4), (8, 16, 4), (12, 20, 4)]


@pytest.mark.parametrize("context,stride", [(8, 8), (8, 0), (8, 9), (1, 1)])
def test_rejects_strides_that_skip_tokens(context, stride):
    with pytest.raises(ValueError):
        make_windows(_docs([10]), context, stride)


def test_sample_windows_seeded():
    windows = make_windows(_docs([400] * 10), context=16, stride=8)
    a, b, c = (sample_windows(windows, 50, s) for s in (1, 1, 2))
    assert a == b
    assert a != c and set(a) != set(c)
    assert len(a) == 50 and len(set(a)) == 50
    order = [windows.index(w) for w in a]
    assert order == sorted(order)
    assert sample_windows(windows, 0, 1) == windows
    assert sample_windows(windows, len(windows) + 5, 3) == windows


def test_token_bytes_cover_document(ref_tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref_tiny)
    texts = ["def f(x):\n    return x  # ünïcødé → ✓ 日本\n", "   leading and trailing   \n\n", "a"]
    docs = tokenize_docs(tok, [{"id": str(i), "text": t} for i, t in enumerate(texts)])
    for doc, text in zip(docs, texts):
        assert sum(doc.token_bytes) == len(text.encode("utf-8"))
        assert tok.decode(doc.ids) == text


def test_seeds_of_a_plan_draw_document_disjoint_windows():
    docs = [TokenizedDoc(f"doc{i}", list(range(40 + 13 * i)), [1] * (40 + 13 * i)) for i in range(30)]
    windows = make_windows(docs, context=16, stride=8)
    draws = [draw_windows(docs, windows, max_windows=20, seed=seed, folds=3, fold=fold)
             for fold, seed in enumerate((1337, 123, 999))]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not set(draws[i].doc_ids) & set(draws[j].doc_ids)
            assert not set(draws[i].window_ids) & set(draws[j].window_ids)
    parts = [d.fold_windows for d in draws]
    largest_doc = max(sum(w.doc == d for w in windows) for d in range(len(docs)))
    assert sum(parts) == len(windows) and max(parts) - min(parts) <= largest_doc  # balanced by window count
    assert all(len(d.windows) == 20 and not d.shortfall and d.unit == "document" for d in draws)
    # A part depends on the pool only; the seed only picks windows inside it.
    whole = [draw_windows(docs, windows, max_windows=0, seed=s, folds=3, fold=0).doc_ids for s in (0, 5)]
    assert whole[0] == whole[1] and set(draws[0].doc_ids) <= set(whole[0])
    assert draw_windows(docs, windows, max_windows=20, seed=1337, folds=3, fold=0).window_ids == draws[0].window_ids


def test_a_part_too_small_draws_all_of_it_and_says_so():
    docs = [TokenizedDoc(f"doc{i}", list(range(100)), [1] * 100) for i in range(6)]
    windows = make_windows(docs, context=16, stride=8)
    draw = draw_windows(docs, windows, max_windows=len(windows), seed=1, folds=3, fold=2)
    assert draw.shortfall and len(draw.windows) == draw.fold_windows < len(windows)
    record = draw.record()
    assert record["n_windows"] == len(draw.windows) and record["requested"] == len(windows)


def test_fewer_documents_than_seeds_split_windows_instead():
    docs = [TokenizedDoc("only", list(range(400)), [1] * 400)]
    windows = make_windows(docs, context=16, stride=8)
    draws = [draw_windows(docs, windows, max_windows=0, seed=0, folds=2, fold=f) for f in (0, 1)]
    assert all(d.unit == "window" for d in draws)
    assert not set(draws[0].window_ids) & set(draws[1].window_ids)
    assert len(draws[0].windows) + len(draws[1].windows) == len(windows)
