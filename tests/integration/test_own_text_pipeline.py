"""End to end on the user's own text: a spec declares a folder of text files as a corpus, and the compiled
corpus, eval and grade stages run on it with ref-tiny (each stage as DVC would run it, in seconds)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml
from stage_runner import run_stage
from system_tools import needs_git

from esa.compile.compiler import compile_specs

SPEC = textwrap.dedent("""\
    phase: 1
    name: own-text
    title: ref-tiny on a folder of text
    hypotheses: [{id: H1, statement: The model evaluates on the user's documents.}]
    corpora:
      mine: {kind: local_text, path: texts/, glob: "**/*.py", calibration_fraction: 0.2, evaluation_fraction: 0.3,
             max_evaluation_bytes: 60000}
    runs:
      - {id: ev, kind: eval, model: ref-tiny, data: mine, protocol: smoke, max_windows: 6, seeds: [7, 8]}
    criteria:
      - {id: fin, hypothesis: H1, kind: finite}
      - {id: sane, hypothesis: H1, kind: ppl_sanity, threshold: 0.9}
    """)


def texts(folder: Path, n: int = 40) -> list[str]:
    """The user's text: small standard-library modules, one file each (ref-tiny's tokenizer knows Python)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chosen = [p for p in sorted(stdlib.glob("*.py")) if 2_000 < p.stat().st_size < 12_000][:n]
    for path in chosen:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "README").write_text("not matched by the glob\n")
    return [p.name for p in chosen]


def test_corpus_eval_and_grade_run_on_a_folder_of_text(tmp_path, ref_tiny, repo_root):
    root = tmp_path / "project"
    (root / "specs").mkdir(parents=True)
    (root / "texts").mkdir()
    for name in ("esa", "stages"):
        (root / name).symlink_to(repo_root / name)
    (root / "models").mkdir()
    (root / "models/ref-tiny").symlink_to(ref_tiny)
    files = texts(root / "texts")
    (root / "specs/own.yaml").write_text(SPEC)
    result = compile_specs(["specs/own.yaml"], root)
    result.write(root)
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    assert "texts" in stages["corpus.mine"]["deps"]

    for name in ("corpus.mine", "eval.own-text/ev/seed7", "eval.own-text/ev/seed8", "grade.own-text"):
        argv = shlex.split(stages[name]["cmd"])
        proc = run_stage(root, argv[1], *argv[2:], timeout=300)  # also checks the stage's derived code deps
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"

    splits = json.loads((root / "data/mine/splits.json").read_text())
    assert splits["disjoint"] and splits["source"]["files"] == len(files)
    kept = [d["id"] for s in ("train", "calibration", "evaluation") for d in splits[s]["docs"]]
    assert len(kept) == len(set(kept)) and set(kept) <= set(files)
    assert 0 < splits["evaluation"]["n_bytes"] <= 60_000 < len(files) * 2_000  # the cap left some files out
    seeds = [json.loads((root / f"results/own-text/ev/seed{s}/sampling.json").read_text()) for s in (7, 8)]
    assert not set(seeds[0]["doc_ids"]) & set(seeds[1]["doc_ids"])  # seeds draw disjoint documents
    assert set(seeds[0]["doc_ids"]) <= {d["id"] for d in splits["evaluation"]["docs"]}
    grades = json.loads((root / "results/own-text/grades.json").read_text())
    assert {cid: c["status"] for cid, c in grades["criteria"].items()} == {"fin": "pass", "sane": "pass"}


@pytest.mark.integration
@needs_git
def test_one_changed_byte_of_the_text_reruns_the_corpus_stage(tmp_path, repo_root):
    """DVC hashes the local text, inside the project (relative) or outside it (absolute)."""
    root, outside = tmp_path / "project", tmp_path / "elsewhere.jsonl"
    (root / "specs").mkdir(parents=True)
    (root / "texts").mkdir()
    for name in ("esa", "stages"):
        (root / name).symlink_to(repo_root / name)
    for i in range(12):
        (root / "texts" / f"note{i}.txt").write_text(f"note {i}: some words about topic {i}.\n")
    outside.write_text("".join(json.dumps({"text": f"row {i} of text"}) + "\n" for i in range(12)))
    (root / "specs/own.yaml").write_text(SPEC.replace('glob: "**/*.py", ', "").replace(
        "\nruns:", f"\n  far: {{kind: local_text, path: {outside}}}\nruns:").replace(
        "seeds: [7, 8]}", "seeds: [7, 8]}\n  - {id: ev2, kind: eval, model: ref-tiny, data: far, protocol: smoke}"))
    compile_specs(["specs/own.yaml"], root).write(root)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "PYTHONPATH": str(repo_root)}

    def dvc(*args: str) -> str:
        proc = subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc("init", "-q")
    dvc("repro", "--single-item", "corpus.mine", "corpus.far")
    assert "up to date" in dvc("status", "corpus.mine", "corpus.far")
    note = root / "texts/note3.txt"
    note.write_bytes(note.read_bytes().replace(b"words", b"wordz"))
    outside.write_text(outside.read_text().replace("row 5", "row 6"))
    status = dvc("status", "corpus.mine", "corpus.far")
    assert "modified:           texts" in status and f"modified:           {outside}" in status
