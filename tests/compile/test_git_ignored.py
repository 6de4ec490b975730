"""Outputs kept in git (cache: false) that the project's .gitignore hides are named by a warning at compile time."""

import subprocess

from system_tools import needs_git

from esa.compile.git_ignored import GITIGNORE_LINES, ignored_paths, ignored_warning

PATHS = ["results/phase1/grades.json", "results/phase1/summary.json"]


@needs_git
def test_a_gitignore_hiding_results_is_warned_about_and_the_recommended_lines_are_not(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("/results/\n")
    assert ignored_paths(tmp_path, PATHS) == PATHS
    warning = ignored_warning(tmp_path, PATHS)
    assert warning.startswith("results/phase1/grades.json and 1 more is git-ignored") and "!/results/*/grades.json" in warning
    (tmp_path / ".gitignore").write_text("\n".join(GITIGNORE_LINES) + "\n")
    assert ignored_paths(tmp_path, PATHS) == [] and ignored_warning(tmp_path, PATHS) is None
    assert ignored_paths(tmp_path, ["results/phase1/gradient/seed1/summary.json"]) != []  # per-seed files stay out


def test_outside_a_git_work_tree_nothing_is_reported(tmp_path):
    assert ignored_paths(tmp_path, PATHS) == []


def test_the_project_gitignore_carries_the_recommended_lines(request):
    lines = (request.config.rootpath / ".gitignore").read_text().splitlines()
    assert [line for line in lines if line in GITIGNORE_LINES] == list(GITIGNORE_LINES)
