"""A stage's code dependencies, read from the import graph of its stage program.

A hand-kept list of the files a stage runs goes stale (an edited grader then leaves old verdicts in place), so
the compiler derives it: the program itself plus every module of this package (or stage program) it imports,
transitively — imports inside functions included, since they run when the function does. The result
over-approximates what one run executes, never under-approximates it (tests/compile/test_code_deps.py checks
that against the modules each stage program really loads).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "esa"
PROGRAMS = "stages"  # a stage program may reuse another's functions (stages/perturb_group.py: stages/perturb.py)


def module_file(module: str, root: Path) -> Path | None:
    """The source file of ``module`` under ``root`` (a module or a package's __init__), or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path, root: Path) -> str:
    """The package a file's relative imports resolve against (esa/a/b.py and esa/a/__init__.py: esa.a)."""
    return ".".join(path.relative_to(root).with_suffix("").parts[:-1])


def imported_modules(path: Path, root: Path, package: str = PACKAGE) -> set[str]:
    """Modules of ``package`` that ``path`` names in any import statement (module level or inside functions)."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size, package)
    if key not in _PARSED:
        _PARSED[key] = _imported_modules(path, root, package)
    return _PARSED[key]


_PARSED: dict[tuple, set[str]] = {}  # one parse per file version: a compile derives the deps of many stages


def _imported_modules(path: Path, root: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _package_of(path, root) if path.is_relative_to(root / package) else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)] if here else []
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            # `from esa.grading import eval_criteria` imports the submodule when one exists by that name.
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {name for name in found if name == package or name.startswith(package + ".")}


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _closure(start: tuple[str, ...], root: Path) -> tuple[str, ...]:
    seen: set[Path] = set()
    pending = [root / s for s in start]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, root) | imported_modules(path, root, package=PROGRAMS):
            for name in _with_parents(module):
                found = module_file(name, root)
                if found is not None and found not in seen:
                    pending.append(found)
    return tuple(sorted(p.relative_to(root).as_posix() for p in seen))


def code_deps(*programs: str, root: Path) -> tuple[str, ...]:
    """The files a stage running ``programs`` (paths relative to ``root``) depends on, sorted.

    The programs come first, then the package's modules in path order: the list dvc.yaml records.
    """
    files = _closure(tuple(programs), root.resolve())
    return (*programs, *(f for f in files if f not in programs))
