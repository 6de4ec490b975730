"""Run manifests: what every stage wrote about itself (command, versions, device, timings, status)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class ManifestRecord:
    run: str  # the results folder relative to results/, e.g. "phase3/signflip/seed1337"
    program: str
    command: str
    status: str
    started_at: str | None
    duration_s: float | None
    spec: str | None
    spec_sha256: str | None
    git_rev: str | None
    device: str
    host: str | None
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished_at(self) -> str | None:
        if not self.started_at or self.duration_s is None:
            return self.started_at
        start = datetime.strptime(self.started_at, TIME_FORMAT).replace(tzinfo=timezone.utc)
        return (start + timedelta(seconds=self.duration_s)).strftime(TIME_FORMAT)


def read_manifest(path: Path, results_root: Path) -> ManifestRecord:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    try:
        run = path.parent.relative_to(results_root).as_posix()
    except ValueError:
        run = path.parent.as_posix()
    total = (data.get("timings") or {}).get("total")
    return ManifestRecord(
        run=run,
        program=str(data.get("stage") or "?"),
        command=str(data.get("command") or ""),
        status=str(data.get("status") or "unknown"),
        started_at=data.get("started_at"),
        duration_s=float(total) if isinstance(total, (int, float)) else None,
        spec=data.get("spec"),
        spec_sha256=data.get("spec_sha256"),
        git_rev=data.get("git_rev"),
        device=str(data.get("device") or "cpu"),  # stages that never touch a model run on the host CPU
        host=data.get("host"),
        versions=dict(data.get("versions") or {}),
        error=data.get("error"),
    )


def find_manifests(root: Path, folder: str = "") -> list[ManifestRecord]:
    """Every manifest under results/ (or under results/<folder>), named relative to results/."""
    base = root / "results"
    search = base / folder if folder else base
    if not search.is_dir():
        return []
    return [read_manifest(path, base) for path in sorted(search.rglob("manifest.json"))]


def manifests_frame(records: Iterable[ManifestRecord]) -> pd.DataFrame:
    """One row per run, newest first — the lab notebook's table of manifests."""
    rows = [{
        "started": r.started_at, "run": r.run, "program": r.program, "status": r.status,
        "duration_s": r.duration_s, "device": r.device, "git_rev": (r.git_rev or "")[:8],
        "spec_sha256": (r.spec_sha256 or "")[:12], "torch": r.versions.get("torch"),
        "transformers": r.versions.get("transformers"), "esa": r.versions.get("esa"), "host": r.host,
    } for r in records]
    frame = pd.DataFrame(rows, columns=["started", "run", "program", "status", "duration_s", "device", "git_rev",
                                        "spec_sha256", "torch", "transformers", "esa", "host"])
    return frame.sort_values(["started", "run"], ascending=[False, True], na_position="last").reset_index(drop=True)


def run_summary(records: list[ManifestRecord]) -> dict[str, Any]:
    """A flat summary of the stages behind one graded phase (kept in grades.json, which DVC tracks as metrics).

    Only mappings and scalars: `dvc exp show` drops lists from metrics files.
    """
    ok = sum(r.status == "ok" for r in records)
    starts = [r.started_at for r in records if r.started_at]
    ends = [r.finished_at for r in records if r.finished_at]
    status = "ok" if records and ok == len(records) else ("failed" if ok == 0 else "partial")
    return {
        "status": status,
        "stages": len(records),
        "stages_ok": ok,
        "compute_s": round(sum(r.duration_s or 0.0 for r in records), 3),
        "first_started_at": min(starts) if starts else None,
        "last_finished_at": max(ends) if ends else None,
        "git_revs": ",".join(sorted({(r.git_rev or "none")[:8] for r in records})),
        "devices": ",".join(sorted({r.device for r in records})),
        "versions": dict(records[0].versions) if records else {},
        "per_run": {r.run: {"status": r.status, "duration_s": r.duration_s, "started_at": r.started_at,
                            "program": r.program} for r in records},
    }
