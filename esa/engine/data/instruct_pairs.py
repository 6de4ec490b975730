"""Instruction pairs derived from Python source: a function's docstring and signature → its body, as chat turns.

Every pair comes from one document of one split, so pairs for fine-tuning (train split) and for measuring the
effect (calibration split) never share a document. The chat template uses plain-text role markers, so the
tokenizer and embedding matrix stay exactly those of the base model.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Jinja, as transformers' apply_chat_template reads it; the end-of-text token closes each assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
MIN_BODY_LINES = 2  # a one-line body (`pass`, `return x`) teaches little


@dataclass(frozen=True)
class Pair:
    doc_id: str
    function: str
    instruction: str
    response: str


def _instruction(node: ast.FunctionDef | ast.AsyncFunctionDef, docstring: str) -> str:
    args = ast.unparse(node.args)
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    return f"Write the Python function `{prefix}def {node.name}({args})`.\n\n{docstring.strip()}"


def _body_without_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str | None:
    """The function's source lines minus its docstring statement (dedented to column 0)."""
    doc = node.body[0]
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    kept = lines[start: doc.lineno - 1] + lines[doc.end_lineno: node.end_lineno]
    if len(kept) - (doc.lineno - 1 - start) < MIN_BODY_LINES:
        return None
    indent = len(kept[0]) - len(kept[0].lstrip())
    return "\n".join(line[indent:] if line[:indent].isspace() or not line[:indent] else line for line in kept)


def pairs_from_source(doc_id: str, text: str) -> list[Pair]:
    """Every function with a docstring in ``text``; a file that does not parse yields none."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node)
        if not docstring or len(node.body) < 2:
            continue
        body = _body_without_docstring(node, lines)
        if body:
            pairs.append(Pair(doc_id, node.name, _instruction(node, docstring), body))
    return pairs


def corpus_pairs(documents: list[dict], max_pairs: int = 0) -> list[Pair]:
    """Pairs from a split's documents, in document order; ``max_pairs`` > 0 caps the count."""
    out: list[Pair] = []
    for doc in documents:
        out.extend(pairs_from_source(doc["id"], doc["text"]))
        if max_pairs and len(out) >= max_pairs:
            return out[:max_pairs]
    return out


def chat_messages(pair: Pair) -> list[dict[str, str]]:
    return [{"role": "user", "content": pair.instruction}, {"role": "assistant", "content": pair.response}]
