"""What a page says about the hub and local models its runs loaded: remote code trusted, the revision asked for and
the commit the stages' manifests recorded."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _code(text: Any) -> str:
    return f"<code>{html.escape(str(text))}</code>"


def loaded_commits(results: Path) -> list[str]:
    """The commits the stages of one run recorded loading (one per distinct value, in seed-folder order)."""
    commits: list[str] = []
    for manifest in sorted(results.glob("seed*/manifest.json")):
        try:
            commit = json.loads(manifest.read_text()).get("revision")
        except (OSError, ValueError):
            continue
        if commit and commit not in commits:
            commits.append(commit)
    return commits


def model_sources_html(runs: Mapping[str, Any], results: Path) -> str:
    """One line per run that trusted remote code, and per hub model: pinned or not, and the commit loaded.

    ``runs`` is the phase's params (run id -> params); ``results`` the phase's results folder."""
    trusted: dict[str, list[str]] = {}
    hub: dict[str, dict[str, Any]] = {}
    for run_id, params in sorted(runs.items()):
        if not isinstance(params, Mapping):
            continue
        name = str(params.get("model_name", params.get("model")))
        if params.get("trust_remote_code"):
            trusted.setdefault(name, []).append(run_id)
        if "revision" in params:  # compile writes it for hub ids only
            entry = hub.setdefault(name, {"asked": set(), "loaded": []})
            entry["asked"].add(params["revision"])
            entry["loaded"] += [c for c in loaded_commits(results / run_id) if c not in entry["loaded"]]
    lines = [f'<p class="notice"><strong>Remote code trusted:</strong> {_code(name)} (runs '
             f"{', '.join(map(html.escape, ids))}) ran Python code of its own when loaded "
             f"(<code>trust_remote_code: true</code> in the spec).</p>" for name, ids in trusted.items()]
    for name, entry in hub.items():
        asked = sorted(str(r) for r in entry["asked"] if r)
        pinned = f"revision {', '.join(map(_code, asked))}" if asked else "<strong>not pinned</strong> (no revision)"
        loaded = f"; loaded commit {', '.join(_code(c[:12]) for c in entry['loaded'])}" if entry["loaded"] else ""
        lines.append(f"<p>Hub model {_code(name)}: {pinned}{loaded}.</p>")
    return "".join(lines)
