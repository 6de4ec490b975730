"""The instruct stage fine-tunes its base on train-split pairs and measures base vs instruct on held-out pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stage_runner import run_stage  # noqa: E402

PARAMS = {"name": "tiny-instruct", "base": "ref-tiny", "corpus": "stdlib-tiny", "train_steps": 12,
          "batch_size": 4, "seq_len": 256, "learning_rate": 3e-3, "max_pairs": 0, "seed": 0}


def _run(tmp_path, ref_tiny, tiny_corpus, key="instruct_models.tiny-instruct"):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"instruct_models": {"tiny-instruct": PARAMS}}))
    return run_stage(tmp_path, "stages/instruct.py", "--key", key, "--base", str(ref_tiny), "--corpus",
                     str(tiny_corpus), "--out", "models/tiny-instruct", timeout=300)


def test_instruct_stage_learns_the_task_and_keeps_the_architecture(tmp_path, ref_tiny, tiny_corpus):
    proc = _run(tmp_path, ref_tiny, tiny_corpus)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "models/tiny-instruct"
    log = json.loads((out / "train_log.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["chat_template"] is True
    assert log["train_pairs"] > 0 and log["heldout_pairs"] > 0 and log["heldout_split"] == "calibration"
    # Held-out pairs come from other documents; fine-tuning on the task lowers their response loss.
    assert log["instruct_heldout"]["response_loss"] < log["base_heldout"]["response_loss"]
    base, tuned = load_file(ref_tiny / "model.safetensors"), load_file(out / "model.safetensors")
    assert base.keys() == tuned.keys() and all(base[k].shape == tuned[k].shape for k in base)
    assert any(not (base[k] == tuned[k]).all() for k in base)
    assert (out / "tokenizer.json").read_text() == (ref_tiny / "tokenizer.json").read_text()
    config = json.loads((out / "tokenizer_config.json").read_text())
    template = config.get("chat_template") or (out / "chat_template.jinja").read_text()
    assert "<|assistant|>" in template


def test_instruct_stage_bad_key_is_one_line_exit_2(tmp_path, ref_tiny, tiny_corpus):
    proc = _run(tmp_path, ref_tiny, tiny_corpus, key="instruct_models.nope")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
