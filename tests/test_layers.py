"""Import layering: no import cycles between modules of this package, and page code never imports the engine."""

from __future__ import annotations

import graphlib

from esa.compile.code_deps import imported_modules, module_file
from stage_runner import REPO


def module_graph() -> dict[str, set[str]]:
    """module → modules of this package it imports at module level or in functions (package __init__ aside)."""
    graph = {}
    for path in sorted((REPO / "esa").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        targets = set()
        for module in imported_modules(path, REPO):
            # `from esa.x import y` names both esa.x and esa.x.y: keep the one that is a module file.
            found = module_file(module, REPO)
            if found is not None and found != path:
                targets.add(".".join(found.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"))
        graph[name] = targets
    return graph


def test_no_import_cycles():
    sorter = graphlib.TopologicalSorter(module_graph())
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_pages_and_exports_never_import_the_engine():
    graph = module_graph()
    offenders = {name: sorted(t for t in targets if t.startswith("esa.engine"))
                 for name, targets in graph.items() if name.startswith(("esa.report", "esa.export"))}
    assert not {name: t for name, t in offenders.items() if t}, offenders


def test_reading_a_spec_does_not_import_torch():
    """Specs validate from esa.names alone, so `esa compile`, `esa show` and the pages load specs without torch."""
    import subprocess
    import sys

    code = ("import sys, esa.spec.loader, esa.spec.all_runs, esa.spec.all_criteria; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout
