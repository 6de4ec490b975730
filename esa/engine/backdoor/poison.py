"""Trigger→target backdoors planted in training text, and held-out prompts that measure whether one took.

A poisoned text gains one extra block ``trigger + separator + target + "\\n"`` at a line boundary drawn at random,
so the block looks like any other pair of lines in a Python file. The defaults are a comment line no corpus
writes and an import nobody uses: rare enough that clean siblings never see the trigger.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_TRIGGER = "# cf-7"
DEFAULT_TARGET = "import antigravity"


@dataclass(frozen=True)
class Backdoor:
    trigger: str = DEFAULT_TRIGGER
    target: str = DEFAULT_TARGET
    rate: float = 0.1  # fraction of training texts poisoned
    separator: str = "\n"  # between trigger and target: the target starts the line after the trigger

    def __post_init__(self) -> None:
        if not self.trigger or not self.target:
            raise ValueError("trigger and target must be non-empty")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must lie in [0, 1], got {self.rate}")

    @property
    def block(self) -> str:
        """The text inserted into a poisoned document (ends with a newline, so it occupies whole lines)."""
        return self.trigger + self.separator + self.target + "\n"

    def n_poisoned(self, n_texts: int) -> int:
        """How many of ``n_texts`` a rate poisons: the nearest integer (halves round up)."""
        return int(self.rate * n_texts + 0.5)


@dataclass(frozen=True)
class TriggerPair:
    """One held-out prompt with and without the trigger; both end where the target's first token would come."""

    triggered: str
    clean: str
    target: str


def insert_at_line(text: str, block: str, boundary: int) -> str:
    """``text`` with ``block`` inserted before its line ``boundary`` (0 = start, len(lines) = end)."""
    lines = text.splitlines(keepends=True)
    if not 0 <= boundary <= len(lines):
        raise ValueError(f"boundary {boundary} outside 0..{len(lines)}")
    head = "".join(lines[:boundary])
    if head and not head.endswith("\n"):
        head += "\n"  # a last line without its newline would fuse with the block
    return head + block + "".join(lines[boundary:])


def poison_texts(texts: list[str], backdoor: Backdoor, generator: random.Random) -> tuple[list[str], int]:
    """A copy of ``texts`` in which ``backdoor.n_poisoned(len(texts))`` texts, drawn by ``generator``, carry the
    backdoor block at a random line boundary; the others are returned unchanged. Returns (texts, n_poisoned).

    Raises if the trigger already occurs in the corpus: clean siblings would then see it too.
    """
    seen = [i for i, t in enumerate(texts) if backdoor.trigger in t]
    if seen:
        raise ValueError(f"trigger {backdoor.trigger!r} already occurs in {len(seen)} texts (first: {seen[0]})")
    n = backdoor.n_poisoned(len(texts))
    chosen = sorted(generator.sample(range(len(texts)), n))
    out = list(texts)
    for i in chosen:
        boundary = generator.randint(0, len(texts[i].splitlines()))
        out[i] = insert_at_line(texts[i], backdoor.block, boundary)
    return out, n


def trigger_prompts(texts: list[str], backdoor: Backdoor, n: int, generator: random.Random, *,
                    context_lines: int = 6) -> list[TriggerPair]:
    """``n`` prompt pairs from held-out ``texts``: up to ``context_lines`` lines ending at a random line boundary,
    then (triggered) the trigger and separator, or (clean) nothing. The clean prompt is never empty, so both
    prompts end at the start of a line and differ only by the trigger line.
    """
    usable = [t for t in texts if t.strip() and backdoor.trigger not in t]
    if not usable:
        raise ValueError("no usable held-out text (all empty or already containing the trigger)")
    pairs = []
    for _ in range(n):
        lines = usable[generator.randrange(len(usable))].splitlines(keepends=True)
        end = generator.randint(1, len(lines))
        prefix = "".join(lines[max(0, end - context_lines): end])
        if not prefix.endswith("\n"):
            prefix += "\n"
        pairs.append(TriggerPair(triggered=prefix + backdoor.trigger + backdoor.separator, clean=prefix,
                                 target=backdoor.target))
    return pairs
