"""The research log: one entry per graded run of a spec, in the shape of a daily research log.

An entry says which command produced the results, how long the stages that ran in it computed, whether they
finished, the key results, and what changed since the previous run of the same spec (params, spec, code,
verdicts). A revision gets an entry for a spec only when some of that spec's stages ran in it: DVC restores the
others from its cache, and their unchanged grades are the previous entry's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from esa.notebook.history import RunRecord
from esa.notebook.ran import Ran, stages_ran

SHARED_PARAMS = ("corpora", "reference_models", "baselines")


@dataclass
class LogEntry:
    when: str | None
    phase: str
    spec: str
    source: str
    command: str
    duration_s: float | None  # compute of the stages that ran in this revision
    stages: int  # stages that ran in this revision
    status: str  # Success | Partial | Failed, as the daily log has it
    counts: dict[str, int]
    key_results: list[str]
    lock_state: str
    changes: list[str] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict)  # run -> what its seeds drew (pool, parts, overlap)
    cached: int | None = None  # stages reused from the cache; None when no earlier revision was there to compare


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def phase_params(params: Mapping[str, Any], phase: str) -> dict[str, Any]:
    flat = flatten(params)
    roots = (phase, *SHARED_PARAMS)
    return {key: value for key, value in flat.items() if key.split(".", 1)[0] in roots}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def criterion_line(cid: str, c: Mapping[str, Any]) -> str:
    test = f" {c.get('comparator')} {_number(c.get('threshold'))}" if c.get("comparator") else ""
    return f"{cid} {_number(c.get('value'))}{test} {c.get('status', '?')}"


def _status(grades: Mapping[str, Any]) -> str:
    run = grades.get("run") or {}
    if run.get("status") == "failed":
        return "Failed"
    if run.get("status") == "partial":
        return "Partial"
    return "Success"


def _command(record: RunRecord, phase: str, baseline: RunRecord | None) -> str:
    if record.kind != "experiment":
        return f"dvc repro grade.{phase}"
    if baseline is None:
        return "dvc exp run"
    before, after = flatten(baseline.params), flatten(record.params)
    sets = [f"-S {key}={after[key]}" for key in sorted(after) if before.get(key) != after[key]]
    return " ".join(["dvc exp run", *sets])


def describe_changes(previous: LogEntry | None, prev_record: RunRecord | None, entry: LogEntry,
                     record: RunRecord) -> list[str]:
    if previous is None or prev_record is None:
        return ["first recorded run of this spec"]
    changes = param_changes(phase_params(prev_record.params, entry.phase), phase_params(record.params, entry.phase))
    old_g, new_g = prev_record.grades[entry.phase], record.grades[entry.phase]
    if old_g.get("spec_sha256") != new_g.get("spec_sha256"):
        changes.append(f"spec {entry.spec} edited (sha256 {str(old_g.get('spec_sha256'))[:8]} → "
                       f"{str(new_g.get('spec_sha256'))[:8]})")
    if previous.lock_state != entry.lock_state:
        changes.append(f"pre-registration: {previous.lock_state} → {entry.lock_state}")
    old_rev, new_rev = (old_g.get("run") or {}).get("git_revs"), (new_g.get("run") or {}).get("git_revs")
    if old_rev != new_rev:
        changes.append(f"code: stages ran at {new_rev} (before: {old_rev})")
    old_c, new_c = old_g.get("criteria") or {}, new_g.get("criteria") or {}
    for cid in new_c:
        if cid not in old_c:
            changes.append(f"criterion {cid} added")
        elif old_c[cid].get("status") != new_c[cid].get("status"):
            changes.append(f"{cid}: {old_c[cid].get('status')} → {new_c[cid].get('status')} "
                           f"({_number(old_c[cid].get('value'))} → {_number(new_c[cid].get('value'))})")
    changes.extend(f"criterion {cid} removed" for cid in old_c if cid not in new_c)
    return changes or ["nothing: same params, spec, code and verdicts"]


def param_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per param whose value changed; params that appeared or went away (another spec compiled in, a
    model added to the shared sections) fold into one line naming their groups."""
    changes = [f"param {key}: {_number(old[key])} → {_number(new[key])}"
               for key in sorted(set(old) & set(new)) if old[key] != new[key]]
    folded = [f"{len(keys)} {what} ({key_groups(keys)})" for what, keys in (
        ("added", sorted(set(new) - set(old))), ("removed", sorted(set(old) - set(new)))) if keys]
    return changes + ([f"params {'; '.join(folded)}"] if folded else [])


def key_groups(keys: list[str], shown: int = 3) -> str:
    groups = list(dict.fromkeys(".".join(key.split(".")[:2]) for key in keys))
    return ", ".join(groups[:shown]) + (f" and {len(groups) - shown} more" if len(groups) > shown else "")


def _same_results(a: RunRecord, b: RunRecord) -> bool:
    return a.grades == b.grades and flatten(a.params) == flatten(b.params)


def build_log(records: Iterable[RunRecord], phase: str | None = None) -> list[LogEntry]:
    """Entries newest first. A workspace identical to a commit or experiment is that run and is listed once."""
    records = list(records)
    commits = {r.rev: r for r in records if r.kind == "commit"}
    records = [r for r in records if not (r.kind == "workspace" and any(
        _same_results(r, other) for other in records if other is not r))]

    def when(record: RunRecord, grades: Mapping[str, Any]) -> str:
        return str(grades.get("graded_at") or record.timestamp or "")

    ran = {(id(r), name): what_ran(r, name, commits) for r in records for name in r.grades}
    pairs = sorted(((when(r, g), r, name) for r in records for name, g in r.grades.items()
                    if phase in (None, name) and ran[id(r), name].graded), key=lambda item: (item[0], item[2]))
    entries: list[LogEntry] = []
    last: dict[str, tuple[LogEntry, RunRecord]] = {}
    for stamp, record, name in pairs:
        grades = record.grades[name]
        criteria = grades.get("criteria") or {}
        done = ran[id(record), name]
        entry = LogEntry(
            when=stamp or None, phase=name, spec=str(grades.get("spec") or f"specs/{name}.yaml"),
            source=record.label, command=_command(record, name, commits.get(record.baseline or "")),
            duration_s=done.compute_s, stages=done.stages, cached=done.cached, status=_status(grades),
            counts={k: int(v) for k, v in (grades.get("counts") or {}).items()},
            key_results=[criterion_line(cid, c) for cid, c in criteria.items()],
            lock_state=lock_text(grades.get("lock") or {}),
            data={str(k): str(v) for k, v in (grades.get("data_draws") or {}).items()},
        )
        previous = last.get(name)
        entry.changes = describe_changes(*(previous or (None, None)), entry, record)
        last[name] = (entry, record)
        entries.append(entry)
    return entries[::-1]


def what_ran(record: RunRecord, name: str, commits: Mapping[str, RunRecord]) -> Ran:
    parent = commits.get(record.parent or "")
    known = parent is not None and bool(parent.grades)  # a commit without cached results tells nothing
    return stages_ran(record.grades[name], parent.grades.get(name) if known else None, known)


def lock_text(lock: Mapping[str, Any]) -> str:
    state = str(lock.get("state") or "not locked")
    return f"{state} (locked after results existed)" if lock.get("results_existed_at_lock") else state


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def duration_line(entry: LogEntry) -> str:
    if entry.cached is None:
        return (f"{duration_text(entry.duration_s)} of stage compute over {entry.stages} stages "
                "(no earlier revision to tell which ran here)")
    if entry.stages == 0:
        return f"only the grade stage ran ({entry.cached} stages reused from the cache)"
    return (f"{duration_text(entry.duration_s)} of stage compute over the {entry.stages} stages that ran "
            f"({entry.cached} reused from the cache)")


def entry_markdown(entry: LogEntry) -> str:
    counts = entry.counts
    verdict = f"{counts.get('pass', 0)} pass, {counts.get('fail', 0)} fail, {counts.get('inconclusive', 0)} inconclusive"
    lines = [
        f"## {entry.when or 'undated'} — {entry.phase} ({entry.source})",
        f"- Command: `{entry.command}`",
        f"- Duration: {duration_line(entry)}",
        f"- Status: {entry.status}",
        f"- Key Results: {verdict}; pre-registration: {entry.lock_state}",
        *[f"  - {line}" for line in entry.key_results],
        *(["- Data drawn by the seeds:", *[f"  - {run}: {text}" for run, text in entry.data.items()]]
          if entry.data else []),
        "- Changed since the previous run of this spec:",
        *[f"  - {change}" for change in entry.changes],
    ]
    return "\n".join(lines)
