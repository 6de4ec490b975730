"""`dvc exp run -S` rewrites params.yaml; `esa compile --check` must still see the spec's values, and the README's
way back to the committed state must restore params and outputs. Runs only the (cheap) corpus stage."""

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from project_commands import run
from system_tools import needs_git

pytestmark = [pytest.mark.integration, needs_git]

# A score run gives params.yaml a `components: null`, which DVC's round trip writes back as `components:`.
SPEC = textwrap.dedent("""\
    phase: 2
    title: t
    hypotheses: [{id: H1, statement: s}]
    defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2]}
    runs:
      - {id: gradient, kind: score, metrics: [grad_x_weight], topk: 20}
    """)
STAGE = "corpus.stdlib-tiny"
KEY = "corpora.stdlib-tiny.max_train_bytes"
# What the README tells a researcher to run after `dvc exp run` / `dvc exp apply`; --allow-missing: outputs of
# stages never run (here all but the corpus) are no error.
RESTORE = (["git", "checkout", "--", "params.yaml", "dvc.yaml", "dvc.lock"], ["dvc", "checkout", "--allow-missing"])



def check(root: Path) -> subprocess.CompletedProcess:
    return run(["esa", "compile", "--check"], root, ok=False)


def train_bytes(root: Path) -> int:
    return (root / "data/stdlib-tiny/train.jsonl").stat().st_size


@pytest.fixture
def project(tmp_path, repo_root):
    for folder in ("stages", "esa"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs/phase2.yaml").write_text(SPEC)
    (tmp_path / ".gitignore").write_text("/results/\n/models/\n/data/\n__pycache__/\n")
    run(["git", "init", "-q"], tmp_path)
    proc = run(["dvc", "init", "-q"], tmp_path, ok=False)
    if proc.returncode != 0:
        pytest.skip(f"dvc init failed here: {proc.stderr.strip()[-300:]}")
    run(["esa", "compile", "specs/phase2.yaml"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "compiled"], tmp_path)
    run(["dvc", "repro", STAGE], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "corpus"], tmp_path)
    return tmp_path


def test_check_after_exp_run_and_the_way_back(project):
    committed, size = (project / "params.yaml").read_text(), train_bytes(project)
    assert "components: null" in committed

    run(["dvc", "exp", "run", "-n", "same", "-S", f"{KEY}=400000", STAGE], project)
    assert (project / "params.yaml").read_text() != committed, "DVC no longer rewrites params.yaml"
    assert check(project).returncode == 0  # same values: up to date

    for command in RESTORE:
        run(command, project)
    run(["dvc", "exp", "run", "-n", "smaller", "-S", f"{KEY}=200000", STAGE], project)
    proc = check(project)
    assert proc.returncode == 1 and "stale: params.yaml" in proc.stderr
    assert train_bytes(project) < size

    # Restoring params.yaml alone leaves dvc.lock (and so `dvc checkout`) at the experiment's outputs.
    run(["git", "checkout", "--", "params.yaml", "dvc.yaml"], project)
    run(RESTORE[1], project)
    assert train_bytes(project) < size
    for command in RESTORE:
        run(command, project)
    assert train_bytes(project) == size and check(project).returncode == 0
    assert (project / "params.yaml").read_text() == committed
    assert run(["git", "status", "--porcelain"], project).stdout == ""

    # Only the corpus stage ever ran, so the apply's checkout reports the other stages' outputs as missing.
    proc = run(["dvc", "exp", "apply", "smaller"], project, ok=False)
    assert proc.returncode == 0 or "missing-files" in proc.stderr, proc.stderr[-2000:]
    assert train_bytes(project) < size and check(project).returncode == 1
    for command in RESTORE:
        run(command, project)
    assert train_bytes(project) == size and check(project).returncode == 0
    assert "up to date" in run(["dvc", "status", STAGE], project).stdout.lower()
