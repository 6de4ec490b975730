"""A sweep of params queued as DVC experiments: checks, expansion and the queue's progress.

DVC does the sweeping itself: `dvc exp run --queue -S key=a,b -S other=c,d` queues one experiment per point of
the cross product (Hydra's sweep syntax, also `range(1,4)` and `choice(a,b)`), and `-n P` names them P-1, P-2, ….
This module adds what DVC leaves out: every key must already be a param (DVC would quietly add a misspelt one
to params.yaml), a dry run lists the points using DVC's own expansion, and a wait for the queue to drain.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from esa.notebook.log import flatten

PARAMS_FILE = "params.yaml"
PENDING = frozenset({"Queued", "Running"})  # `dvc queue status`; anything else (Success, Failed, …) is done


class QueueError(ValueError):
    """A setting or target the project does not have (one line for the user)."""


def _overrides(settings: Sequence[str]) -> dict[str, list]:
    """{params file: Hydra overrides}, parsed as `dvc exp run -S` parses them."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import to_hydra_overrides

    parsed: dict[str, list] = {}
    for setting in settings:
        if "=" not in setting:
            raise QueueError(f"-S {setting}: expected key=value (or key=a,b for a sweep)")
        for path, texts in to_path_overrides([setting]).items():
            try:
                overrides = to_hydra_overrides(texts)
            except Exception as exc:  # Hydra's grammar errors: several classes, all "this is not an override"
                raise QueueError(f"-S {setting}: {str(exc).splitlines()[0]}") from None
            parsed.setdefault(path, []).extend((setting, o) for o in overrides)
    return parsed


def _has_key(tree: Any, key: str) -> bool:
    for part in key.split("."):
        if isinstance(tree, Mapping) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return False
    return True


def check_settings(settings: Sequence[str], root: Path) -> None:
    """Every -S names a param its file already has: DVC would add a misspelt key instead of failing."""
    from hydra.core.override_parser.types import OverrideType

    if not settings:
        raise QueueError("nothing to sweep: give at least one -S key=value "
                         "(e.g. -S phase1.smoke-ref-s.max_windows=128,256)")
    for path, overrides in _overrides(settings).items():
        file = root / path
        if not file.exists():
            raise QueueError(f"{path}: no such params file (-S {overrides[0][0]})")
        try:
            params = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise QueueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        for setting, override in overrides:
            key = override.key_or_group
            if override.type != OverrideType.CHANGE:
                raise QueueError(f"-S {setting}: esa queue only changes params {path} already has "
                                 "(adding or deleting keys is `dvc exp run`'s business)")
            if not _has_key(params, key):
                close = difflib.get_close_matches(key, list(flatten(params)), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise QueueError(f"{path}: no param '{key}' (-S {setting}){hint}")


def check_targets(targets: Sequence[str], root: Path) -> None:
    """Plain stage names must be stages of dvc.yaml; paths and `file:stage` targets are left to DVC."""
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.exists():
        raise QueueError("dvc.yaml: no such file (run `esa compile` first)")
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    for target in targets:
        if ":" in target or "/" in target or target.endswith(".yaml"):
            continue
        if target.split("@", 1)[0] not in stages:
            close = difflib.get_close_matches(target, list(stages), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise QueueError(f"dvc.yaml: no stage '{target}'{hint}")


def expand(settings: Sequence[str]) -> list[list[str]]:
    """The experiments `dvc exp run --queue` makes of these settings, each as its list of -S values."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    points = get_hydra_sweeps(to_path_overrides(list(settings)))
    return [[value if path == PARAMS_FILE else f"{path}:{value}" for path, values in point.items() for value in values]
            for point in points]


def dvc_queue_args(dvc: str, settings: Sequence[str], targets: Sequence[str], name_prefix: str | None) -> list[str]:
    command = [dvc, "exp", "run", "--queue"]
    for setting in settings:
        command += ["-S", setting]
    if name_prefix:
        command += ["-n", name_prefix]
    return command + list(targets)


def queued_names(output: str) -> list[str]:
    """The names `dvc exp run --queue` printed, in queue order."""
    return re.findall(r"^Queued experiment '([^']+)'", output, flags=re.MULTILINE)


def parse_queue_status(output: str) -> dict[str, str]:
    """{experiment name: status} from `dvc queue status`'s table (Task, Name, Created, Status)."""
    statuses = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) >= 4 and re.fullmatch(r"[0-9a-f]{7}", cells[0]):
            statuses[cells[1]] = cells[-1]  # a name reused later in the queue: its latest task wins
    return statuses


def run_dvc(command: Sequence[str], root: Path) -> subprocess.CompletedProcess:
    """Run dvc with its own directory first on PATH: `dvc queue start` spawns its workers as plain `dvc`, and
    their stages' `python`; from a venv that is not activated, neither would be found and the queue would wait
    forever without a word."""
    env = dict(os.environ)
    if Path(command[0]).is_absolute():
        env["PATH"] = os.pathsep.join([str(Path(command[0]).parent), env.get("PATH", "")])
    return subprocess.run(list(command), cwd=root, capture_output=True, text=True, env=env)


def wait_for(names: Sequence[str], dvc: str, root: Path, timeout: float | None = None, poll: float = 2.0,
             report: Callable[[str], None] = lambda line: None) -> dict[str, str]:
    """Poll `dvc queue status` until none of NAMES is queued or running; {name: final status}.

    Raises TimeoutError, naming the unfinished ones, after TIMEOUT seconds (None: wait as long as it takes).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        proc = run_dvc([dvc, "queue", "status"], root)
        statuses = parse_queue_status(proc.stdout)
        mine = {name: statuses.get(name, "missing") for name in names}
        progress = ", ".join(f"{name} {status}" for name, status in mine.items())
        if progress != last:
            report(progress)
            last = progress
        if not PENDING.intersection(mine.values()):
            return mine
        if deadline is not None and time.monotonic() > deadline:
            idle = "Worker status: 0 active, 0 idle" in proc.stdout
            raise TimeoutError(f"still pending after {timeout:g} s: {progress}"
                               + ("; no queue worker is running (`dvc queue start`)" if idle else ""))
        time.sleep(poll)
