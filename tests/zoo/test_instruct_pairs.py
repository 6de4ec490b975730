"""Instruction pairs from source, the chat template, and the response-only training labels."""

from __future__ import annotations

import textwrap

from esa.engine.data.instruct_pairs import Pair, chat_messages, corpus_pairs, pairs_from_source
from esa.engine.models.instruct import IGNORE, encode_pair

SOURCE = textwrap.dedent('''
    import functools


    def short(x):
        """Too short to teach anything."""
        return x


    class Box:
        @functools.cache
        def area(self, scale=2):
            """Area of the box,
            times scale."""
            width = self.w * scale
            return width * self.h

        def undocumented(self):
            a = 1
            return a
''')


def test_pairs_take_docstring_and_signature_and_drop_the_docstring_from_the_body():
    pairs = pairs_from_source("box.py", SOURCE)
    assert [p.function for p in pairs] == ["area"]
    pair = pairs[0]
    assert pair.instruction == "Write the Python function `def area(self, scale=2)`.\n\nArea of the box,\ntimes scale."
    assert pair.response == ("@functools.cache\ndef area(self, scale=2):\n    width = self.w * scale\n"
                             "    return width * self.h")


def test_unparseable_documents_yield_nothing_and_max_pairs_caps():
    assert pairs_from_source("topics/x", "this is prose, not Python (") == []
    docs = [{"id": f"d{i}", "text": SOURCE} for i in range(5)]
    assert len(corpus_pairs(docs)) == 5 and [p.doc_id for p in corpus_pairs(docs, 2)] == ["d0", "d1"]


def test_training_ids_are_the_chat_template_and_labels_cover_the_response_only(ref_tiny):
    from transformers import AutoTokenizer

    from esa.engine.data.instruct_pairs import CHAT_TEMPLATE

    tokenizer = AutoTokenizer.from_pretrained(ref_tiny)
    tokenizer.chat_template = CHAT_TEMPLATE
    pair = Pair("d", "f", "Write f.", "def f():\n    return 1")
    ids, labels = encode_pair(tokenizer, pair)
    rendered = tokenizer.apply_chat_template(chat_messages(pair), tokenize=False)
    assert rendered == "<|user|>\nWrite f.\n<|assistant|>\ndef f():\n    return 1<|endoftext|>\n"
    # What the model trains on is the template's text, up to the end-of-text token that closes the answer.
    assert tokenizer.decode(ids) == rendered.removesuffix("\n")
    scored = [t for t, label in zip(ids, labels) if label != IGNORE]
    assert tokenizer.decode(scored) == pair.response + tokenizer.eos_token
    assert labels[: len(ids) - len(scored)] == [IGNORE] * (len(ids) - len(scored))
