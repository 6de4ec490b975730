"""The Phase-3 page with a known-answer criterion: its row in the criteria table like any other kind, and the super
weight it is about named under "What was perturbed"."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

FIXTURE = Path(__file__).parent / "data" / "phase3"
WEIGHT = {"tensor": "model.layers.1.mlp.down_proj.weight", "layer": 1, "component": "mlp_down", "expert": None,
          "row": 1512, "col": 33, "flat_index": 1512 * 64 + 33, "score": 97.25, "value": -2.640625}


def _with_known_answer(project: Path) -> None:
    """The fixture plus a ppl_factor criterion on `signflip`, graded, and the super weight its seeds recorded."""
    spec = project / "specs/phase3.yaml"
    spec.write_text(spec.read_text() + "  - {id: known, hypothesis: H1, kind: ppl_factor, run: signflip}\n")
    path = project / "results/phase3/analysis.json"
    analysis = json.loads(path.read_text())
    analysis["runs"]["signflip"]["super_weights"] = [{"seed": s, "n_super": 40, "weights": [WEIGHT]} for s in (1, 2)]
    path.write_text(json.dumps(analysis))
    path = project / "results/phase3/grades.json"
    grades = json.loads(path.read_text())
    grades["criteria"]["known"] = {
        "hypothesis": "H1", "kind": "ppl_factor", "description": "zeroing the super weight", "comparator": ">=",
        "threshold": 2.0, "value": 2.5, "ci": [2.1, 2.9], "p": None, "status": "pass",
        "reason": "CI [2.1, 2.9] >= 2 holds for the whole interval", "evidence": []}
    path.write_text(json.dumps(grades))


def test_page_grades_and_names_the_known_answer(tmp_path: Path, render_page) -> None:
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    _with_known_answer(tmp_path)
    html = render_page(tmp_path, "phase3")
    row = next(r for r in re.findall(r"<tr>.*?</tr>", html, flags=re.S) if "<code>known</code>" in r)
    assert 'class="badge badge-pass"' in row and "[2.1, 2.9]" in row and "&gt;=" in row
    assert "Known-answer check." in html and "Super weights in all: <code>signflip</code> 40." in html
    weight = next(r for r in re.findall(r"<tr>.*?</tr>", html, flags=re.S) if "-2.64062" in r)
    cells = re.findall(r"<td>(.*?)</td>", weight, flags=re.S)
    assert cells == ["signflip", "1, 2", "1", WEIGHT["tensor"], "1512", "33", "-2.64062", "97.25"]
    assert "Traceback" not in html
