"""What every stage program shares: reading its params, writing JSON deterministically, the run manifest."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

MANIFEST_PACKAGES = ("esa", "torch", "transformers", "accelerate", "tokenizers", "dvc", "pandas", "numpy", "scipy")


def stage_parser(doc: str, *, what: str, seed: bool = False, spec: bool = False) -> argparse.ArgumentParser:
    """The arguments every stage program takes: --key, --out, --params (and --seed, --spec where it has them)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--key", required=True, help=f"dotted key of the {what} params in params.yaml")
    if seed:
        parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--out", required=True, type=Path)
    if spec:
        parser.add_argument("--spec", default=None, help="the spec this run came from (recorded only)")
    parser.add_argument("--params", default="params.yaml")
    return parser


def error_text(exc: BaseException) -> str:
    """The first line of an error's message (KeyError's str() would wrap it in quotes)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def bad_input(stage: str, exc: BaseException, what: str = "") -> int:
    """Report bad params or inputs as one line on stderr; the stage exits with code 2."""
    print(f"{stage}: {what + ': ' if what else ''}{error_text(exc)}", file=sys.stderr)
    return 2


def seed_part(params: dict[str, Any], seed: int) -> tuple[int, int]:
    """(folds, fold): the document-disjoint part of the window pool this seed draws from.

    Explicit ``folds``/``fold`` params (shared baselines) win; otherwise seed number i of the run's ``seed_plan``
    of n seeds takes part i of n; without a plan the whole pool is one part.
    """
    if "folds" in params:
        return int(params["folds"]), int(params.get("fold", 0))
    plan = params.get("seed_plan")
    if not plan:
        return 1, 0
    plan = [int(s) for s in plan]
    if seed not in plan:
        raise ValueError(f"seed {seed} is not in the run's seed plan {plan}")
    return len(plan), plan.index(seed)


def write_sampling(out: Path, draw) -> dict[str, Any]:
    """sampling.json: where this seed's windows came from (pool, part, documents); returns the scalar summary."""
    record = draw.record()
    write_json(Path(out) / "sampling.json", record)
    return {k: v for k, v in record.items() if k not in ("doc_ids", "window_ids")}


def load_params(key: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """Return the subtree of params.yaml at a dotted key such as ``phase1.standard-ref-s``."""
    node: Any = yaml.safe_load(Path(path).read_text())
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{path}: no params at '{key}' (missing '{part}'); run `esa compile` again")
        node = node[part]
    if not isinstance(node, dict):
        raise KeyError(f"{path}: params at '{key}' are not a mapping")
    return node


def _jsonable(value: Any) -> Any:
    # NaN/inf are not JSON; write them as strings so readers see them instead of crashing.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    return value


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")
    return path


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in MANIFEST_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class Manifest:
    """Collects what a stage did and writes ``manifest.json`` beside its outputs.

    Use as a context manager: timings and the final status are recorded even when the stage fails.
    """

    def __init__(self, out_dir: str | Path, *, params: dict[str, Any], spec: str | Path | None = None,
                 stage: str | None = None):
        self.out_dir = Path(out_dir)
        self.data: dict[str, Any] = {
            "stage": stage,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "params": params,
            "spec": str(spec) if spec else None,
            "spec_sha256": sha256_file(spec) if spec and Path(spec).exists() else None,
            "git_rev": git_revision(),
            "versions": package_versions(),
            "python": platform.python_version(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "timings": {},
        }
        self._start = 0.0

    def set(self, **values: Any) -> None:
        self.data.update(values)

    def time(self, name: str, seconds: float) -> None:
        self.data["timings"][name] = round(seconds, 4)

    def __enter__(self) -> "Manifest":
        self._start = time.perf_counter()
        self.data["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.data["timings"]["total"] = round(time.perf_counter() - self._start, 4)
        self.data["status"] = "ok" if exc is None else "error"
        if exc is not None:
            self.data["error"] = f"{exc_type.__name__}: {exc}"
        write_json(self.out_dir / "manifest.json", self.data)
