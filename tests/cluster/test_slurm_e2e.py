"""`esa submit --slurm` on a real single-node SLURM cluster started for the test (Debian's slurm-wlm): the jobs
run the stages, the commit job records them, and `dvc status` finds everything up to date. Skips, saying why,
where the cluster cannot start (slurm-wlm missing, not root, a daemon failing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esa.notebook.history import dvc_executable
from tests.cluster.dag_project import TWO_LAYERS, make_project
from tests.cluster.local_slurm import ClusterUnavailable, start_cluster
from tests.system_tools import needs_git

JOBS_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        running = start_cluster(tmp_path_factory.mktemp("slurm"))
    except ClusterUnavailable as exc:
        pytest.skip(f"no local SLURM cluster: {exc}")
    yield running
    running.stop()


@needs_git
def test_submitted_stages_run_and_are_committed(cluster, tmp_path):
    project = make_project(tmp_path, TWO_LAYERS)  # a and e, then b
    env = {**cluster.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    submitted = subprocess.run([sys.executable, "-m", "esa.cli", "submit", "--slurm", "--cpus", "1"], cwd=project,
                               env=env, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted commit: job " in submitted.stdout and "watch: squeue --jobs=" in submitted.stdout
    deadline = time.monotonic() + JOBS_TIMEOUT_S
    while not cluster.queue_empty():
        assert time.monotonic() < deadline, f"jobs still queued after {JOBS_TIMEOUT_S} s\n{cluster.logs()}"
        time.sleep(1)
    logs = "\n".join(path.read_text() for path in sorted(project.glob(".esa/slurm/*/logs/*.out")))
    assert "esa: stage b" in logs  # the stages ran as SLURM array tasks, which log to .esa/slurm/…/logs
    assert (project / "b.txt").read_text() == "a\n", logs
    assert (project / "side" / "e.txt").read_text() == "e\n", logs
    status = subprocess.run([dvc_executable(), "status", "--json"], cwd=project, capture_output=True, text=True)
    assert json.loads(status.stdout) == {}, logs
