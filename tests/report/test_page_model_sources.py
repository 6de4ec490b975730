"""The page's params block says when a run trusted a checkpoint's own code, and which hub commit its stages loaded."""

import json

import yaml

from esa.report.provenance import params_block

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def write_params(root, runs: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump({"phase1": runs, "corpora": {"stdlib": {}}}))


def test_trusted_remote_code_and_the_loaded_commit_are_visible(tmp_path):
    write_params(tmp_path, {
        "ev": {"model": "org/custom", "model_name": "org/custom", "revision": None, "trust_remote_code": True},
        "ev2": {"model": "org/plain", "model_name": "org/plain", "revision": "v1.0"}})
    manifest = tmp_path / "results/phase1/ev/seed1/manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"revision": COMMIT, "load_seconds": 1.5}))
    page = params_block(tmp_path / "params.yaml", "phase1")
    assert ("<strong>Remote code trusted:</strong> <code>org/custom</code> (runs ev) ran Python code of its own when "
            "loaded (<code>trust_remote_code: true</code> in the spec).") in page
    assert ("Hub model <code>org/custom</code>: <strong>not pinned</strong> (no revision); loaded commit "
            f"<code>{COMMIT[:12]}</code>.") in page
    assert "Hub model <code>org/plain</code>: revision <code>v1.0</code>." in page
    assert page.index("Remote code trusted") < page.index("<details>")


def test_embedded_and_local_models_add_no_line(tmp_path):
    write_params(tmp_path, {"ev": {"model": "models/ref-s", "model_name": "ref-s"},
                            "local": {"model": "checkpoints/x", "model_name": "./checkpoints/x"}})
    page = params_block(tmp_path / "params.yaml", "phase1")
    assert page.startswith("<details>") and "Remote code" not in page and "Hub model" not in page
