"""The user's own inputs end to end: a spec naming a local text folder and a local checkpoint (shaped like a hub cache
snapshot) compiles, `dvc repro` builds the corpus, evaluates and grades; the manifest records the load time and the
snapshot's commit, and one changed byte of the checkpoint or of the text makes `dvc status` report the stage changed."""

import json
import shutil
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml
from project_commands import run
from system_tools import needs_git

pytestmark = [pytest.mark.integration, needs_git]

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
CHECKPOINT = f"checkpoints/models--esa-test--tiny/snapshots/{COMMIT}"
SPEC = textwrap.dedent(f"""\
    phase: 1
    title: Local checkpoint
    hypotheses: [{{id: H1, statement: the checkpoint evaluates on the user's text}}]
    corpora:
      mine: {{kind: local_text, path: texts/, calibration_fraction: 0.2, evaluation_fraction: 0.4}}
    runs:
      - {{id: ev, kind: eval, model: ./{CHECKPOINT}, data: mine, protocol: smoke, max_windows: 4, seeds: [1]}}
    criteria:
      - {{id: fin, hypothesis: H1, kind: finite}}
    """)
STAGE = "eval.phase1/ev/seed1"



def status(root: Path) -> dict:
    return json.loads(run(["dvc", "status", "--json", STAGE], root).stdout or "{}")


@pytest.fixture(scope="module")
def project(tmp_path_factory, request, ref_tiny, tiny_corpus):
    repo = Path(request.config.rootpath)
    root = tmp_path_factory.mktemp("checkpoint-project")
    for folder in ("stages", "esa"):
        shutil.copytree(repo / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ref_tiny, root / CHECKPOINT)
    (root / "texts").mkdir()
    stdlib = Path(sysconfig.get_paths()["stdlib"])  # the user's text: small modules ref-tiny's tokenizer knows
    for path in [p for p in sorted(stdlib.glob("*.py")) if 2_000 < p.stat().st_size < 12_000][:30]:
        (root / "texts" / path.name).write_bytes(path.read_bytes())
    (root / "specs").mkdir()
    (root / "specs/phase1.yaml").write_text(SPEC)
    (root / ".gitignore").write_text("/results/\n/models/\n/data/\n/checkpoints/\n")
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["esa", "compile", "specs/phase1.yaml"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    run(["dvc", "repro", "grade.phase1"], root)
    return root


def test_the_checkpoint_folder_is_a_dep_and_the_manifest_records_the_load(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    deps = lock[STAGE]["deps"]
    assert any(dep["path"] == CHECKPOINT and dep["md5"].endswith(".dir") for dep in deps)
    assert any(dep["path"] == "data/mine" for dep in deps)
    assert any(dep["path"] == "texts" for dep in lock["corpus.mine"]["deps"])
    grades = json.loads((project / "results/phase1/grades.json").read_text())
    assert grades["criteria"]["fin"]["status"] == "pass"
    manifest = json.loads((project / "results/phase1/ev/seed1/manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["load_seconds"] > 0
    assert manifest["revision"] == COMMIT and manifest["trust_remote_code"] is False
    assert manifest["params"]["model"] == CHECKPOINT
    assert status(project) == {}


def test_one_changed_byte_of_the_checkpoint_makes_the_stage_changed(project):
    weights = project / CHECKPOINT / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    changed = status(project)[STAGE]
    assert {"changed deps": {CHECKPOINT: "modified"}} in changed


def test_one_changed_byte_of_the_text_makes_the_corpus_stage_changed(project):
    text = sorted((project / "texts").iterdir())[0]
    text.write_text(text.read_text() + "#")
    changed = json.loads(run(["dvc", "status", "--json", "corpus.mine"], project).stdout or "{}")["corpus.mine"]
    assert {"changed deps": {"texts": "modified"}} in changed
