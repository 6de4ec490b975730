"""The shifted domain: document-disjoint, deterministic parts, and batch losses equal to the measured ones."""

import random
from collections import Counter

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.adaptation.data import doc_parts, domain_parts, domain_split, pair_loss, text_loss
from esa.engine.data.instruct_pairs import Pair
from esa.engine.models.instruct import IGNORE, response_loss
from esa.engine.models.reference import mean_loss


def make_pairs(n_docs=11, seed=0):
    rng = random.Random(seed)
    pairs = []
    for d in range(n_docs):
        for f in range(rng.randint(1, 4)):
            pairs.append(Pair(f"lib/mod{d}.py", f"f{f}", f"instruction {d}.{f}", f"response {d}.{f}"))
    return pairs


@pytest.mark.parametrize("n_parts", [1, 2, 3, 5])
def test_parts_are_document_disjoint_and_cover_every_pair(n_parts):
    pairs = make_pairs()
    parts = domain_parts(pairs, n_parts)
    assert len(parts) == n_parts
    docs = [{p.doc_id for p in part} for part in parts]
    for i in range(n_parts):
        for j in range(i + 1, n_parts):
            assert not docs[i] & docs[j]
    assert Counter(p for part in parts for p in part) == Counter(pairs)
    sizes = [len(d) for d in docs]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    for part in parts:  # each part keeps the pairs' order
        assert part == [p for p in pairs if p in part]


def test_parts_are_deterministic_and_ignore_the_input_order():
    pairs = make_pairs()
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    assert domain_parts(pairs, 3) == domain_parts(pairs, 3)
    assert doc_parts([p.doc_id for p in pairs], 3) == doc_parts([p.doc_id for p in shuffled], 3)
    for i in range(3):
        assert Counter(domain_split(shuffled, 3, i)) == Counter(domain_split(pairs, 3, i))
        assert domain_split(pairs, 3, i) == domain_parts(pairs, 3)[i]


def test_parts_follow_the_sha256_order_of_document_ids():
    import hashlib

    ids = [f"doc{i}" for i in range(7)]
    ordered = sorted(ids, key=lambda d: hashlib.sha256(d.encode()).hexdigest())
    assert doc_parts(ids, 3) == {d: i % 3 for i, d in enumerate(ordered)}


def test_too_few_documents_or_a_bad_part_are_refused():
    pairs = make_pairs(n_docs=2)
    with pytest.raises(ValueError, match="2 documents"):
        domain_parts(pairs, 3)
    with pytest.raises(ValueError, match="part"):
        domain_split(pairs, 2, 2)
    with pytest.raises(ValueError, match="n_parts"):
        domain_parts(pairs, 0)


@pytest.fixture()
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, pad_token_id=0)).eval()


def test_pair_loss_is_the_mean_response_token_nll(llama):
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 64, (5, 12), generator=gen)
    labels, mask = ids.clone(), torch.ones_like(ids)
    for row, (prompt, length) in enumerate([(3, 12), (5, 9), (2, 6), (4, 12), (6, 8)]):
        labels[row, :prompt] = IGNORE  # the prompt is not scored
        labels[row, length:] = IGNORE  # nor the padding
        ids[row, length:] = 0
        mask[row, length:] = 0
    loss = pair_loss(ids, labels, mask)(llama, list(range(5)))
    assert loss.requires_grad
    assert loss.item() == pytest.approx(response_loss(llama, ids, labels, mask, batch_size=5), rel=1e-5)


def test_text_loss_is_the_reference_next_token_loss(llama):
    chunks = torch.randint(0, 64, (4, 10), generator=torch.Generator().manual_seed(4))
    loss = text_loss(chunks)(llama, [0, 1, 2, 3])
    assert loss.item() == pytest.approx(mean_loss(llama, chunks, batch_size=4), rel=1e-5)
    assert text_loss(chunks)(llama, [2]).item() == pytest.approx(mean_loss(llama, chunks[2:3], 1), rel=1e-5)
