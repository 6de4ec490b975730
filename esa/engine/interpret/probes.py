"""Cloze probes: short contexts whose next token is a known answer, as plain data.

An item is (prompt, answer); the text is prompt + answer and the answer should be one token of the model's
tokenizer in that text. Which items qualify depends on the tokenizer, so ``esa.engine.interpret.cloze`` filters
them at run time. Answers carry their leading space where code has one (``import`` ↦ `` os``); after an
indentation the prompt ends in the spaces, since byte-level tokenizers fold the last space into the next word.

The Python categories suit the models trained on the standard library's sources; ``facts`` suits a pretrained
general model.
"""

from __future__ import annotations

KEYWORD: list[tuple[str, str]] = [
    ("def f(x):\n    ", "return"),
    ("for i", " in"),
    ("for i in range(10):\n    if i % 2 == 0:\n        ", "continue"),
    ("while True:\n    line = f.readline()\n    if not line:\n        ", "break"),
    ("if x is", " None"),
    ("if x is not", " None"),
    ("if key not", " in"),
    ("try:\n    value = d[key]\n", "except"),
    ("try:\n    f.write(data)\n", "finally"),
    ("class Foo:\n    ", "def"),
    ("import os\n", "import"),
    ("from os import path\n", "from"),
    ("    def __init__(self):\n        self.x = 0\n\n    ", "def"),
    ("if a:\n    x = 1\n", "else"),
    ("with open(path)", " as"),
    ("        raise ValueError('bad value')\n    ", "return"),
    ("    return x if x", " else"),
    ("if x", " is"),
    ("    @property\n    ", "def"),
    ("def __repr__(self):\n    ", "return"),
    ("for key, value in d.items():\n    if value is", " None"),
    ("class Error(Exception):\n    ", "pass"),
    ("return", " True"),
    ("return", " False"),
    ("if", " not"),
    ("    if x < 0:\n        ", "raise"),
    ("sorted(items, key=", "lambda"),
    ("    else:\n        ", "return"),
]

BUILTIN: list[tuple[str, str]] = [
    ("for i in", " range"),
    ("for i in range(", "len"),
    ("n =", " len"),
    ("    if not", " isinstance"),
    ("if", " isinstance"),
    ("for i, item in", " enumerate"),
    ("for a, b in", " zip"),
    ("with", " open"),
    ("        raise", " ValueError"),
    ("        raise", " TypeError"),
    ("    except", " KeyError"),
    ("    except", " AttributeError"),
    ("    except", " ImportError"),
    ("    def __init__(self, *args, **kwargs):\n        ", "super"),
    ("    @", "property"),
    ("    @", "classmethod"),
    ("    @", "staticmethod"),
    ("value =", " getattr"),
    ("if", " hasattr"),
    ("    def __repr__(self):\n        return", " repr"),
    ("return", " str"),
    ("return", " int"),
    ("return", " list"),
    ("return", " dict"),
    ("return", " tuple"),
    ("return", " sorted"),
    ("name =", " type"),
    ("class Foo(", "object"),
    ("    raise", " NotImplementedError"),
]

STDLIB: list[tuple[str, str]] = [
    ('"""Operating system interfaces."""\nimport', " os"),
    ('"""Command line tools."""\nimport os\nimport', " sys"),
    ('"""Regular expressions for the parser."""\nimport', " re"),
    ('"""Extract, format and print information about Python stack traces."""\nimport', " traceback"),
    ('"""Logging helpers."""\nimport', " logging"),
    ('"""Run child processes."""\nimport', " subprocess"),
    ('"""Time utilities."""\nimport', " time"),
    ('"""Threads and locks."""\nimport', " threading"),
    ('"""Enumerations."""\nfrom', " enum"),
    ('"""Binary data packing."""\nimport', " struct"),
    ('"""Define names for built-in types."""\nimport', " types"),
    ('"""Common string operations."""\nimport', " string"),
    ('"""Copy objects."""\nimport', " copy"),
    ('"""Warnings."""\nimport', " warnings"),
    ('"""Get useful information from live Python objects."""\nimport', " inspect"),
    ('"""Locale support."""\nimport', " locale"),
    ('"""Counters and ordered dicts."""\nfrom', " collections"),
    ('"""Type hints."""\nfrom', " typing"),
    ("import os\nimport", " sys"),
    ("import sys\nimport", " os"),
    ('"""Higher-order functions and operations on callable objects."""\nimport', " functools"),
    ('"""Dates and times."""\nimport', " datetime"),
    ("logger =", " logging"),
    ('"""Set handlers for asynchronous events."""\nimport', " signal"),
    ("    lock =", " threading"),
    ("    path =", " os"),
    ("pattern =", " re"),
    ("    start =", " time"),
    ("@", "functools"),
    ("import", " io"),
]

FACTS: list[tuple[str, str]] = [
    ("The capital of France is", " Paris"),
    ("The capital of Germany is", " Berlin"),
    ("The capital of Italy is", " Rome"),
    ("The capital of Spain is", " Madrid"),
    ("The capital of Japan is", " Tokyo"),
    ("The capital of Russia is", " Moscow"),
    ("The capital of England is", " London"),
    ("The capital of China is", " Beijing"),
    ("The capital of Egypt is", " Cairo"),
    ("The capital of Greece is", " Athens"),
    ("The capital of Canada is", " Ottawa"),
    ("The capital of Ireland is", " Dublin"),
    ("The Eiffel Tower is in the city of", " Paris"),
    ("The largest planet in the solar system is", " Jupiter"),
    ("The chemical symbol for gold is", " Au"),
    ("Water is made of hydrogen and", " oxygen"),
    ("The first month of the year is", " January"),
    ("The day after Monday is", " Tuesday"),
    ("The opposite of hot is", " cold"),
    ("The Statue of Liberty is in New", " York"),
    ("Romeo and Juliet was written by William", " Shakespeare"),
    ("The currency of Japan is the", " yen"),
]

PROBES: dict[str, list[tuple[str, str]]] = {"keyword": KEYWORD, "builtin": BUILTIN, "stdlib": STDLIB,
                                            "facts": FACTS}
PYTHON_CATEGORIES = ("keyword", "builtin", "stdlib")

__all__ = ["BUILTIN", "FACTS", "KEYWORD", "PROBES", "PYTHON_CATEGORIES", "STDLIB"]
