"""Pre-registration: lock a spec's hypotheses and criteria before seeing results.

`esa lock specs/phase3.yaml` writes `specs/phase3.lock` (committed beside the spec). It holds the registered
content itself, not only its hash, so an amendment can always be shown as a diff without digging through git.
Grading and the reports then say "pre-registered", "amended after lock" (with the diff) or "not locked".
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from esa.stageio import git_revision, sha256_file

REGISTERED_KEYS = ("hypotheses", "criteria")
PRE_REGISTERED, AMENDED, NOT_LOCKED = "pre-registered", "amended after lock", "not locked"
_HEADER = "# esa pre-registration lock, written by `esa lock`. Do not edit: grading compares the spec against it.\n"


class LockError(ValueError):
    """A lock that cannot be written or read (one line, exit code 2)."""


def lock_path(spec_path: str | Path) -> Path:
    spec_path = Path(spec_path)
    return spec_path.with_name(f"{spec_path.stem}.lock")


def registered_content(spec_path: str | Path) -> dict[str, Any]:
    """The parts of a spec that pre-registration covers, as plain data (comments and layout do not count)."""
    raw = yaml.safe_load(Path(spec_path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise LockError(f"{spec_path}:1: a spec must be a mapping")
    return {key: raw.get(key) or [] for key in REGISTERED_KEYS}


def content_sha256(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _as_yaml(content: dict[str, Any]) -> list[str]:
    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100).splitlines(keepends=True)


def content_diff(old: dict[str, Any], new: dict[str, Any], old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(_as_yaml(old), _as_yaml(new), fromfile=old_name, tofile=new_name))


def _by_id(items: Any) -> dict[str, Any]:
    out = {}
    for index, item in enumerate(items or []):
        key = item.get("id") if isinstance(item, dict) else None
        out[str(key) if key is not None else f"#{index}"] = item
    return out


def changed_items(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per section, which ids were added, removed or changed (so tables can flag the amended rows)."""
    changes: dict[str, dict[str, str]] = {}
    for section in REGISTERED_KEYS:
        before, after = _by_id(old.get(section)), _by_id(new.get(section))
        section_changes = {key: "removed" for key in before if key not in after}
        section_changes.update({key: "added" for key in after if key not in before})
        section_changes.update({key: "changed" for key in after if key in before and after[key] != before[key]})
        if section_changes:
            changes[section] = dict(sorted(section_changes.items()))
    return changes


@dataclass
class LockStatus:
    """What grading and reports show about a spec's pre-registration."""

    state: str
    lock_file: str
    locked_at: str | None = None
    locked_rev: str | None = None
    locked_sha256: str | None = None
    current_sha256: str | None = None
    results_existed_at_lock: bool = False
    changes: dict[str, dict[str, str]] = field(default_factory=dict)
    diff: str = ""
    amendments: list[dict[str, Any]] = field(default_factory=list)  # earlier locks, each with its reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_lock(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LockError(f"{path}:{mark.line + 1 if mark else 1}: unreadable lock file") from None
    missing = [key for key in ("sha256", "registered", "locked_at") if not isinstance(data, dict) or key not in data]
    if missing:
        raise LockError(f"{path}:1: {missing[0]}: missing from lock file (write it again with `esa lock`)")
    return data


def lock_status(spec_path: str | Path) -> LockStatus:
    spec_path = Path(spec_path)
    path = lock_path(spec_path)
    current = registered_content(spec_path)
    current_sha = content_sha256(current)
    if not path.exists():
        return LockStatus(NOT_LOCKED, str(path), current_sha256=current_sha)
    lock = read_lock(path)
    registered = lock["registered"]
    # The stored hash must match the stored content, or the lock itself was edited by hand.
    if content_sha256(registered) != lock["sha256"]:
        raise LockError(f"{path}:1: sha256: does not match the registered content (the lock file was edited)")
    state = PRE_REGISTERED if current_sha == lock["sha256"] else AMENDED
    diff = "" if state == PRE_REGISTERED else content_diff(
        registered, current, f"{path.name} (locked {lock['locked_at']})", f"{spec_path.name} (now)")
    return LockStatus(
        state=state,
        lock_file=str(path),
        locked_at=lock["locked_at"],
        locked_rev=lock.get("git_rev"),
        locked_sha256=lock["sha256"],
        current_sha256=current_sha,
        results_existed_at_lock=bool(lock.get("results_existed")),
        changes=changed_items(registered, current) if state == AMENDED else {},
        diff=diff,
        amendments=[{"locked_at": h.get("locked_at"), "reason": h.get("superseded_because")}
                    for h in lock.get("history") or []],
    )


def write_lock(spec_path: str | Path, *, results_dir: Path, amend_reason: str | None = None) -> tuple[Path, str]:
    """Lock the spec; return (lock file, message). Re-locking changed content needs a reason, kept in history."""
    spec_path = Path(spec_path)
    path = lock_path(spec_path)
    content = registered_content(spec_path)
    sha = content_sha256(content)
    history: list[dict[str, Any]] = []
    if path.exists():
        old = read_lock(path)
        if old["sha256"] == sha:
            return path, f"{spec_path}: already pre-registered ({old['locked_at']}, sha256 {sha[:12]}…)"
        if not amend_reason:
            changes = changed_items(old["registered"], content)
            what = "; ".join(f"{s}: {', '.join(f'{k} {v}' for k, v in c.items())}" for s, c in changes.items())
            raise LockError(f"{spec_path}: amended after lock ({what}); to register the amendment run "
                            f"`esa lock {spec_path} --amend \"<reason>\"` (the old lock is kept in its history)")
        history = [*(old.get("history") or []), {
            "locked_at": old["locked_at"], "git_rev": old.get("git_rev"), "sha256": old["sha256"],
            "registered": old["registered"], "superseded_because": amend_reason,
        }]
    record = {
        "spec": spec_path.as_posix(),
        "locked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_rev": git_revision(),
        "spec_sha256": sha256_file(spec_path),
        "results_existed": (results_dir / "grades.json").exists(),
        "sha256": sha,
        "registered": content,
        "history": history,
    }
    path.write_text(_HEADER + yaml.safe_dump(record, sort_keys=False, allow_unicode=True, width=100),
                    encoding="utf-8")
    verb = "re-registered" if history else "pre-registered"
    return path, f"{spec_path}: {verb} hypotheses and criteria (sha256 {sha[:12]}…) in {path}"
