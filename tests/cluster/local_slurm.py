"""A throwaway single-node SLURM cluster on localhost: munged with a generated key, slurmctld and slurmd with a
generated slurm.conf, every state, spool, log and socket file under one temporary folder.

`start_cluster` raises ClusterUnavailable (the end-to-end test skips with its message) when a program is missing,
the daemons cannot start (not root, a port taken) or the node does not come up in time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


class ClusterUnavailable(Exception):
    """Why no local SLURM cluster could be started (a skip reason)."""


@dataclass
class LocalSlurm:
    home: Path
    env: dict[str, str]  # SLURM_CONF for the client commands (sbatch, squeue)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        """Kill the daemons this cluster started, by their own process ids."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)

    def queue_empty(self) -> bool:
        listed = subprocess.run(["squeue", "-h", "-o", "%i"], env=self.env, capture_output=True, text=True)
        return listed.returncode == 0 and not listed.stdout.strip()

    def logs(self) -> str:
        """The daemons' logs, for a failing test's message."""
        return "\n".join(f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in [*sorted(self.home.glob("*.log")), self.home / "daemons.out"] if path.exists())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node_line() -> str:
    """This machine's CPUs and memory as slurmd itself measures them (`slurmd -C`), so the node is not drained."""
    measured = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30)
    first = measured.stdout.splitlines()[0] if measured.returncode == 0 and measured.stdout else ""
    if not first.startswith("NodeName="):
        raise ClusterUnavailable(f"`slurmd -C` could not measure this node: {measured.stderr.strip()[:200]}")
    fields = [item for item in first.split() if not item.startswith("NodeName=")]
    return " ".join(["NodeName=localhost", "NodeAddr=127.0.0.1", *fields, "State=UNKNOWN"])


def _slurm_conf(home: Path, node: str) -> str:
    return "\n".join([
        "ClusterName=esatest",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        f"AuthInfo=socket={home / 'munge.socket'}",
        "CredType=cred/munge",
        f"StateSaveLocation={home / 'state'}",
        f"SlurmdSpoolDir={home / 'spool'}",
        f"SlurmctldPidFile={home / 'slurmctld.pid'}",
        f"SlurmdPidFile={home / 'slurmd.pid'}",
        f"SlurmctldLogFile={home / 'slurmctld.log'}",
        f"SlurmdLogFile={home / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SlurmdTimeout=60",
        node,
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _start_munge(home: Path, log) -> subprocess.Popen:
    key = home / "munge.key"
    made = subprocess.run(["mungekey", "--create", f"--keyfile={key}"], capture_output=True, text=True)
    if made.returncode != 0:
        raise ClusterUnavailable(f"mungekey could not create a key: {made.stderr.strip()[:200]}")
    key.chmod(0o600)
    munged = subprocess.Popen(
        ["munged", "--foreground", "--force", f"--socket={home / 'munge.socket'}", f"--key-file={key}",
         f"--pid-file={home / 'munged.pid'}", f"--seed-file={home / 'munged.seed'}",
         f"--log-file={home / 'munged.log'}"], stdout=log, stderr=subprocess.STDOUT)
    _wait_for(lambda: (home / "munge.socket").exists() or munged.poll() is not None, 15)
    if munged.poll() is not None or not (home / "munge.socket").exists():
        raise ClusterUnavailable(f"munged did not start: {_last_line(home)}")
    return munged


def _wait_for(ready, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.5)
    return False


def start_cluster(home: Path, boot_seconds: float = 60) -> LocalSlurm:
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        raise ClusterUnavailable(f"{', '.join(missing)} not on PATH (apt install slurm-wlm)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("a local slurmd must run as root to start jobs")
    for folder in ("state", "spool"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)  # munged refuses a socket folder others may write to
    conf = home / "slurm.conf"
    conf.write_text(_slurm_conf(home, _node_line()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = LocalSlurm(home, env)
    log = (home / "daemons.out").open("w")
    try:
        cluster.processes.append(_start_munge(home, log))
        for daemon in (["slurmctld", "-D", "-c", "-i"], ["slurmd", "-D", "-N", "localhost"]):
            cluster.processes.append(subprocess.Popen(daemon, env=env, stdout=log, stderr=subprocess.STDOUT))
        if not _wait_for(lambda: _node_idle(env) or any(p.poll() is not None for p in cluster.processes),
                         boot_seconds) or not _node_idle(env):
            raise ClusterUnavailable(f"the local node did not become idle within {boot_seconds:.0f} s: "
                                     + _last_line(home))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _node_idle(env: dict[str, str]) -> bool:
    state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
    return state.returncode == 0 and state.stdout.strip() in {"idle", "mixed", "allocated"}


def _last_line(home: Path) -> str:
    logs = [*sorted(home.glob("*.log")), home / "daemons.out"]
    errors = [line for path in logs if path.exists() for line in path.read_text(errors="replace").splitlines()
              if "error" in line.lower() or "fatal" in line.lower()]
    return errors[-1][:300] if errors else "no error in the daemons' logs"
