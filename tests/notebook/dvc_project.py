"""A tiny git + DVC project with two specs' grade stages and one experiment, so tests read real
`dvc exp show --json` output (its shape changes between DVC versions)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from esa.notebook.history import dvc_executable

# Spec s grades x/10 (pass below 0.5); spec t reads another param, so an experiment on p.x leaves it cached.
STAGE = textwrap.dedent("""\
    import datetime, json, os, sys, yaml
    name, key = sys.argv[1], sys.argv[2]
    x = yaml.safe_load(open("params.yaml"))[key]["x"]
    values = ({"cv": {"value": x / 10, "status_code": 1 if x < 5 else -1, "ci_low": x / 20},
               "fin": {"value": 1.0, "status_code": 1}} if name == "s" else {"ok": {"value": x, "status_code": 1}})
    grades = {"graded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "criteria": {cid: {"reason": "long text DVC would show as a column"} for cid in values},
              "criteria_values": values, "run": {"status": "ok", "stages": 1, "compute_s": 2.0}}
    os.makedirs(f"results/{name}", exist_ok=True)
    json.dump(grades, open(f"results/{name}/grades.json", "w"))
    """)


def sh(cwd: Path, *args: str) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)


def make_baseline(root: Path) -> Path:
    """Commit "baseline": both specs graded, s with p.x=1 and t with q.x=3."""
    dvc = dvc_executable()
    sh(root, "git", "init", "-q")
    sh(root, "git", "config", "user.email", "t@example.org")
    sh(root, "git", "config", "user.name", "t")
    sh(root, dvc, "init", "-q")
    (root / "grade.py").write_text(STAGE)
    (root / "params.yaml").write_text("p:\n  x: 1\nq:\n  x: 3\n")
    stages = "".join(textwrap.dedent(f"""\
          grade.{name}:
            cmd: {sys.executable} grade.py {name} {key}
            deps: [grade.py]
            params: [{key}.x]
            metrics: [results/{name}/grades.json]
        """) for name, key in (("s", "p"), ("t", "q")))
    (root / "dvc.yaml").write_text("stages:\n" + textwrap.indent(stages, "  "))
    sh(root, dvc, "repro", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "baseline")
    return root


def make_project(root: Path) -> Path:
    """The baseline, then `dvc exp run -S p.x=7 -n bigger` (which reruns grade.s only)."""
    sh(make_baseline(root), dvc_executable(), "exp", "run", "-q", "-S", "p.x=7", "-n", "bigger")
    return root
