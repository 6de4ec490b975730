"""Loading what a run names: revision and the remote-code opt-in reach from_pretrained; a checkpoint with code of its
own is refused in one line unless the spec opts in; a hub cache snapshot's commit is recorded, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from esa.engine.models import loading
from esa.engine.models.loading import RemoteCodeRefused, load_model, load_stage_model
from stage_runner import run_stage

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# A model class of its own, as a hub repository with custom code ships it (here only a renamed Llama).
CONFIG_CODE = ("from transformers import LlamaConfig\n\n\nclass TinyCustomConfig(LlamaConfig):\n"
               "    model_type = 'esa-tiny-custom'\n")
MODEL_CODE = ("from transformers import LlamaForCausalLM\n\nfrom .configuration_custom import TinyCustomConfig\n\n\n"
              "class TinyCustomForCausalLM(LlamaForCausalLM):\n    config_class = TinyCustomConfig\n")


@pytest.fixture
def custom_code_model(tmp_path, ref_tiny) -> Path:
    """ref-tiny saved as a checkpoint whose config.json names its own classes (auto_map)."""
    folder = tmp_path / "custom"
    shutil.copytree(ref_tiny, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="esa-tiny-custom", architectures=["TinyCustomForCausalLM"],
                  auto_map={"AutoConfig": "configuration_custom.TinyCustomConfig",
                            "AutoModelForCausalLM": "modeling_custom.TinyCustomForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "configuration_custom.py").write_text(CONFIG_CODE)
    (folder / "modeling_custom.py").write_text(MODEL_CODE)
    return folder


def test_revision_and_remote_code_setting_reach_both_from_pretrained_calls(monkeypatch):
    calls = []

    class Recorder:
        def __init__(self, kind):
            self.kind = kind

        def from_pretrained(self, name, **kwargs):
            calls.append((self.kind, name, kwargs))
            return FakeModel() if self.kind == "model" else object()

    class FakeModel:
        def to(self, device):
            return self

        def eval(self):
            return self

    monkeypatch.setattr(loading, "AutoModelForCausalLM", Recorder("model"))
    monkeypatch.setattr(loading, "AutoTokenizer", Recorder("tokenizer"))
    looked_up = []
    monkeypatch.setattr(loading, "cached_config", lambda repo, revision: looked_up.append((repo, revision)) or
                        f"/cache/models--org--name/snapshots/{COMMIT}/config.json")
    loaded = load_stage_model({"model": "org/name", "dtype": "float32", "device": "cpu", "revision": "v2",
                               "trust_remote_code": True})
    assert [(kind, name) for kind, name, _ in calls] == [("model", "org/name"), ("tokenizer", "org/name")]
    for _, _, kwargs in calls:
        assert kwargs["revision"] == "v2" and kwargs["trust_remote_code"] is True
    # The commit is read from the cache's snapshot folder of the revision asked for.
    assert looked_up == [("org/name", "v2")]
    assert loaded.record["revision"] == COMMIT and loaded.record["trust_remote_code"] is True
    assert loaded.record["load_seconds"] >= 0
    calls.clear()
    load_model("org/name")
    # Never None: transformers would then ask on the terminal before refusing.
    assert all(kwargs["revision"] is None and kwargs["trust_remote_code"] is False for _, _, kwargs in calls)


def test_a_checkpoint_with_its_own_code_is_refused_without_the_opt_in(custom_code_model):
    with pytest.raises(RemoteCodeRefused) as caught:
        load_model(str(custom_code_model))
    message = str(caught.value)
    assert message == (f"model '{custom_code_model}' runs code of its own (auto_map in its config): set "
                       f"`trust_remote_code: true` in the spec to allow it")
    assert "\n" not in message


def test_the_evaluate_stage_refuses_it_in_one_line_and_runs_it_with_the_opt_in(tmp_path, custom_code_model,
                                                                             tiny_corpus):
    params = {"model": str(custom_code_model), "model_name": "./custom", "data": str(tiny_corpus),
              "split": "evaluation", "protocol": "smoke", "context": 32, "stride": 16, "max_windows": 2,
              "batch_size": 2, "dtype": "float32", "device": "cpu"}
    trusted = {**params, "trust_remote_code": True}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"p": {"plain": params, "trusted": trusted}}))
    proc = run_stage(tmp_path, "stages/evaluate.py", "--key", "p.plain", "--seed", "1", "--out", "plain",
                     timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"evaluate: model '{custom_code_model}' runs code of its own (auto_map in its config): set "
        f"`trust_remote_code: true` in the spec to allow it")
    # The opt-in runs the checkpoint's code (copied to a modules folder of this test, not the user's cache).
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "stages/evaluate.py"), "--key", "p.trusted", "--seed", "1",
                           "--out", "trusted"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "trusted/manifest.json").read_text())
    assert manifest["trust_remote_code"] is True and manifest["load_seconds"] > 0


def hub_cache(root: Path, model: Path, repo: str = "esa-test/tiny") -> Path:
    """A Hugging Face cache holding ``model`` as the commit COMMIT of ``repo``, its main branch pointing there; as
    in a real cache, the snapshot's files are links to blobs."""
    org, name = repo.split("/")
    entry = root / f"models--{org}--{name}"
    snapshot = entry / "snapshots" / COMMIT
    (entry / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in model.iterdir():
        shutil.copy(file, entry / "blobs" / file.name)
        (snapshot / file.name).symlink_to(Path("../../blobs") / file.name)
    (entry / "refs").mkdir()
    (entry / "refs/main").write_text(COMMIT)
    return snapshot


def test_the_commit_of_a_hub_id_or_a_cache_snapshot_is_recorded_offline(tmp_path, ref_tiny):
    snapshot = hub_cache(tmp_path / "hub", ref_tiny)
    script = ("import json, sys\nfrom esa.engine.models.loading import load_stage_model\n"
              "records = [load_stage_model(json.loads(arg)).record for arg in sys.argv[1:]]\n"
              "print(json.dumps(records))\n")
    requests = [{"model": "esa-test/tiny", "revision": None}, {"model": "esa-test/tiny", "revision": "main"},
                {"model": str(snapshot)}, {"model": str(ref_tiny)}]
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, *map(json.dumps, requests)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [record["revision"] for record in records] == [COMMIT, COMMIT, COMMIT, None]
    assert all(record["load_seconds"] > 0 and record["trust_remote_code"] is False for record in records)
