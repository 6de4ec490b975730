"""Poisoning: the rate gives an exact count, a seed gives the same corpus, the backdoor block appears once in each
poisoned text at a line boundary and nowhere else, and trigger prompts differ only by the trigger line."""

from __future__ import annotations

import random

import pytest

from esa.engine.backdoor.poison import Backdoor, insert_at_line, poison_texts, trigger_prompts


def corpus(n: int = 40) -> list[str]:
    return [f"def f{i}(x):\n    y = x + {i}\n    return y\n" for i in range(n)]


@pytest.mark.parametrize(("n", "rate", "expected"), [(40, 0.25, 10), (40, 0.0, 0), (40, 1.0, 40), (10, 0.05, 1),
                                                      (10, 0.04, 0), (7, 0.5, 4)])
def test_the_rate_poisons_an_exact_count(n, rate, expected):
    texts, n_poisoned = poison_texts(corpus(n), Backdoor(rate=rate), random.Random(0))
    assert n_poisoned == expected
    assert sum(Backdoor().block in t for t in texts) == expected


def test_the_block_is_in_exactly_the_poisoned_texts_and_clean_texts_are_untouched():
    backdoor = Backdoor(rate=0.3)
    original = corpus()
    texts, n_poisoned = poison_texts(original, backdoor, random.Random(3))
    assert original == corpus()  # the input list is not modified
    changed = [i for i, (a, b) in enumerate(zip(original, texts)) if a != b]
    assert len(changed) == n_poisoned == 12
    for i, (before, after) in enumerate(zip(original, texts)):
        if i not in changed:
            assert after is before
            continue
        assert after.count(backdoor.trigger) == after.count(backdoor.target) == after.count(backdoor.block) == 1
        # Removing the block gives the original back, and the block starts a line.
        at = after.index(backdoor.block)
        assert at == 0 or after[at - 1] == "\n"
        assert after[:at] + after[at + len(backdoor.block):] == before


def test_poisoning_is_deterministic_per_seed_and_differs_across_seeds():
    backdoor = Backdoor(rate=0.25)
    a, _ = poison_texts(corpus(), backdoor, random.Random(7))
    b, _ = poison_texts(corpus(), backdoor, random.Random(7))
    c, _ = poison_texts(corpus(), backdoor, random.Random(8))
    assert a == b
    assert a != c


def test_insertion_points_cover_every_line_boundary():
    backdoor = Backdoor(rate=1.0)
    texts, _ = poison_texts(["a\nb\n"] * 200, backdoor, random.Random(0))
    block = backdoor.block
    assert set(texts) == {block + "a\nb\n", "a\n" + block + "b\n", "a\nb\n" + block}


def test_a_last_line_without_newline_does_not_fuse_with_the_block():
    assert insert_at_line("x = 1", "# t\nimport z\n", 1) == "x = 1\n# t\nimport z\n"
    assert insert_at_line("", "B\n", 0) == "B\n"
    with pytest.raises(ValueError):
        insert_at_line("a\n", "B\n", 2)


def test_a_corpus_that_already_contains_the_trigger_is_refused():
    with pytest.raises(ValueError, match="already occurs"):
        poison_texts(["x = 1\n", "# cf-7 seen\n"], Backdoor(rate=0.5), random.Random(0))
    with pytest.raises(ValueError):
        Backdoor(rate=1.5)


def test_trigger_prompts_differ_only_by_the_trigger_line():
    backdoor = Backdoor()
    held_out = corpus(5)
    pairs = trigger_prompts(held_out, backdoor, 30, random.Random(1), context_lines=2)
    again = trigger_prompts(held_out, backdoor, 30, random.Random(1), context_lines=2)
    assert pairs == again and len(pairs) == 30
    for pair in pairs:
        assert pair.target == backdoor.target
        assert pair.triggered == pair.clean + backdoor.trigger + "\n"
        assert pair.clean.endswith("\n") and 1 <= pair.clean.count("\n") <= 2
        assert any(pair.clean in t for t in held_out)
    assert len({p.clean for p in pairs}) > 5  # boundaries and texts vary
