"""What every phase page shows about where its numbers came from: pre-registration, the spec and params used."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from esa.report.model_sources import model_sources_html

_LOCK_BADGE = {"pre-registered": "pass", "amended after lock": "fail", "not locked": "inconclusive"}


def lock_badge(state: str) -> str:
    css = next((c for prefix, c in _LOCK_BADGE.items() if state.startswith(prefix)), "inconclusive")
    return f'<span class="badge badge-{css}">{html.escape(state)}</span>'


def lock_banner(lock: Mapping[str, Any] | None) -> str:
    """The pre-registration state as grading recorded it; an amendment shows its diff against the lock."""
    if not lock:
        return '<p class="lock">Unknown: graded before locks existed; run <code>dvc repro</code>.</p>'
    state = str(lock.get("state"))
    parts = [f'<p class="lock">{lock_badge(state)} ']
    if state == "not locked":
        parts.append("Hypotheses and criteria were not locked before the results were produced; "
                     "<code>esa lock &lt;spec&gt;</code> registers them.</p>")
        return "".join(parts)
    sha = html.escape(str(lock.get("locked_sha256") or "")[:12])
    parts.append(f"locked {html.escape(str(lock.get('locked_at')))} (sha256 <code>{sha}…</code>, "
                 f"<code>{html.escape(str(lock.get('lock_file')))}</code>).</p>")
    if lock.get("results_existed_at_lock"):
        parts.append('<p class="notice">The lock was written when graded results already existed, so it does '
                     "not show that the criteria predate the results.</p>")
    for amendment in lock.get("amendments") or []:
        parts.append(f'<p class="notice">Re-locked after a change: an earlier lock of '
                     f"{html.escape(str(amendment.get('locked_at')))} was superseded because: "
                     f"<em>{html.escape(str(amendment.get('reason')))}</em></p>")
    changes = lock.get("changes") or {}
    if changes:
        items = "".join(f"<li>{html.escape(section)}: " + ", ".join(
            f"<code>{html.escape(k)}</code> {html.escape(v)}" for k, v in entries.items()) + "</li>"
            for section, entries in changes.items())
        parts.append(f'<div class="notice"><strong>Amended after lock.</strong><ul>{items}</ul>'
                     f"<pre class=\"diff\">{diff_html(str(lock.get('diff') or ''))}</pre></div>")
    return "".join(parts)


def diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        css = "add" if line.startswith("+") and not line.startswith("+++") else (
            "del" if line.startswith("-") and not line.startswith("---") else "")
        text = html.escape(line)
        lines.append(f'<span class="{css}">{text}</span>' if css else text)
    return "\n".join(lines)


def amended_criteria(grades: Mapping[str, Any]) -> dict[str, str]:
    return dict(((grades.get("lock") or {}).get("changes") or {}).get("criteria") or {})


def spec_file(root: Path, name: str, grades: Mapping[str, Any] | None) -> str:
    """The spec a page of spec ``name`` shows, relative to the project: the file grades.json was graded from when
    it still exists (a spec may live anywhere, e.g. specs/hub/), else specs/<name>.yaml."""
    graded = (grades or {}).get("spec")
    if isinstance(graded, str) and graded and (Path(root) / graded).is_file():
        return graded
    return f"specs/{name}.yaml"


def spec_block(spec_path: Path, graded_sha256: str | None) -> str:
    """The spec file as it is now, with a warning when it is not the text that was graded."""
    if not spec_path.is_file():
        return f"<p>No spec at <code>{html.escape(str(spec_path))}</code>.</p>"
    data = spec_path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    note = ""
    if graded_sha256 and graded_sha256 != sha:
        note = (f'<p class="notice">This spec (sha256 <code>{sha[:12]}…</code>) differs from the one graded '
                f"(<code>{html.escape(graded_sha256[:12])}…</code>): run <code>dvc repro</code> to grade it.</p>")
    return (f"{note}<details><summary><code>{html.escape(spec_path.name)}</code> — sha256 <code>{sha[:12]}…</code>"
            f"</summary><pre>{html.escape(data.decode('utf-8', 'replace'))}</pre></details>")


def params_block(params_path: Path, phase: str) -> str:
    """The params.yaml entries the phase's stages read (its own runs; corpora, models and baselines), after a line
    for each hub model (pinned, commit loaded) and each run that trusted a checkpoint's own code."""
    if not params_path.is_file():
        return "<p>No <code>params.yaml</code>: run <code>esa compile</code>.</p>"
    params = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    used = {key: value for key, value in params.items()
            if key == phase or key in ("corpora", "reference_models", "baselines")}
    text = yaml.safe_dump(used, sort_keys=False, allow_unicode=True, width=110)
    sources = model_sources_html(used.get(phase) or {}, params_path.parent / "results" / phase)
    return (f"{sources}<details><summary><code>params.yaml</code> — {len(used.get(phase) or {})} runs of {phase} and the "
            f"shared corpus, model and baseline entries</summary><pre>{html.escape(text)}</pre></details>")
