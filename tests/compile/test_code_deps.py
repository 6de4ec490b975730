"""Code deps come from the import graph: exact on a constructed package, and a superset of what real stage
programs load (the stage runs themselves are checked in tests/stage_runner.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from esa.compile.code_deps import code_deps, imported_modules
from stage_runner import REPO, run_stage


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def package(tmp_path) -> Path:
    write(tmp_path, {
        "stages/prog.py": """
            import json
            from esa.a import thing
            """,
        "esa/__init__.py": "",
        "esa/a.py": """
            from esa.b import helper
            thing = 1
            """,
        "esa/b.py": """
            def helper():
                import esa.c.d  # runs when called: still a dependency
                return esa.c.d
            """,
        "esa/c/__init__.py": "",
        "esa/c/d.py": """
            from . import e
            from .f import g
            from ..h import k
            """,
        "esa/c/e.py": "",
        "esa/c/f.py": "g = 1",
        "esa/h.py": "k = 2",
        "esa/unused.py": "import esa.a",
        "esa/c/also_unused.py": "",
    })
    return tmp_path


def test_closure_follows_module_lazy_and_relative_imports(package):
    assert code_deps("stages/prog.py", root=package) == (
        "stages/prog.py", "esa/__init__.py", "esa/a.py", "esa/b.py", "esa/c/__init__.py", "esa/c/d.py",
        "esa/c/e.py", "esa/c/f.py", "esa/h.py")


def test_an_edited_file_is_read_again(package):
    (package / "esa/h.py").write_text("from esa import unused\nk = 2\n")
    assert "esa/unused.py" in code_deps("stages/prog.py", root=package)


def test_from_package_import_name_resolves_submodules_only_when_they_exist(package):
    (package / "stages/other.py").write_text("from esa.c import e, not_a_module\n")
    assert imported_modules(package / "stages/other.py", package) == {"esa.c", "esa.c.e", "esa.c.not_a_module"}
    assert code_deps("stages/other.py", root=package) == (
        "stages/other.py", "esa/__init__.py", "esa/c/__init__.py", "esa/c/e.py")


def test_a_program_reusing_another_depends_on_it_and_its_imports(package):
    (package / "stages/group.py").write_text("from stages.prog import thing\n")
    assert code_deps("stages/group.py", root=package) == (
        "stages/group.py", "esa/__init__.py", "esa/a.py", "esa/b.py", "esa/c/__init__.py", "esa/c/d.py",
        "esa/c/e.py", "esa/c/f.py", "esa/h.py", "stages/prog.py")


def test_grade_stage_loads_only_what_its_deps_name(tmp_path):
    """The grade stage run on the Phase-3 page fixture: every module it loads is among its derived deps."""
    import shutil

    fixture = REPO / "tests/report/data/phase3"
    shutil.copytree(fixture / "results", tmp_path / "results")
    shutil.copytree(fixture / "specs", tmp_path / "specs")
    proc = run_stage(tmp_path, "stages/grade.py", "specs/phase3.yaml")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results/phase3/grades.json").exists()


def test_grade_stage_bad_spec_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "spec.yaml").write_text("phase: one\n")
    proc = run_stage(tmp_path, "stages/grade.py", "spec.yaml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ") and "spec.yaml" in proc.stderr
