from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from esa.engine.data.corpus import load_split
from esa.engine.evaluation.evaluate import evaluate
from esa.engine.models.loading import load_model
from stage_runner import run_stage

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(cwd: Path, program: str, *args: str) -> subprocess.CompletedProcess:
    """The stage program run as DVC runs it, its loaded modules checked against its derived code deps."""
    return run_stage(cwd, Path(program).relative_to(ROOT).as_posix(), *args, timeout=120)


@pytest.fixture()
def eval_params(tmp_path, ref_tiny, tiny_corpus) -> dict:
    params = {"model": str(ref_tiny), "data": str(tiny_corpus), "split": "evaluation", "protocol": "smoke",
              "context": 64, "stride": 32, "max_windows": 12, "batch_size": 4, "dtype": "float32",
              "device": "cpu", "note": "extra keys are recorded"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"phase1": {"smoke-ref-tiny": params}}))
    return params


def test_evaluate_stage_end_to_end(tmp_path, eval_params):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: test\n")
    out = "results/phase1/smoke-ref-tiny/seed7"
    proc = _run(tmp_path, str(ROOT / "stages/evaluate.py"), "--key", "phase1.smoke-ref-tiny", "--seed", "7",
                "--spec", str(spec), "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "ppl" in proc.stdout.strip().splitlines()[-1]
    metrics = json.loads((tmp_path / out / "metrics.json").read_text())
    frame = pd.read_parquet(tmp_path / out / "sequences.parquet")
    manifest = json.loads((tmp_path / out / "manifest.json").read_text())
    assert metrics["seed"] == 7 and metrics["protocol"] == "smoke" and metrics["status"] == "ok"
    assert len(frame) == metrics["n_windows"] == 12
    assert metrics["ppl"] == pytest.approx(math.exp(frame["nll_sum"].sum() / frame["n_tokens"].sum()), rel=1e-9)
    assert manifest["status"] == "ok" and manifest["seed"] == 7 and manifest["params"]["note"]
    assert manifest["spec_sha256"] and manifest["n_params"] == metrics["n_params"]
    # Same numbers as the engine called in-process with the same seed.
    model, tok = load_model(eval_params["model"])
    ref, ref_frame = evaluate(model, tok, load_split(Path(eval_params["data"]), "evaluation"), context=64, stride=32,
                              max_windows=12, batch_size=4, seed=7, progress=False)
    assert list(ref_frame["window_id"]) == list(frame["window_id"])
    assert metrics["ppl"] == pytest.approx(ref["ppl"], rel=1e-6)


@pytest.mark.parametrize("key,edit", [("phase1.missing", {}), ("phase1.smoke-ref-tiny", {"context": 100000}),
                                      ("phase1.smoke-ref-tiny", {"stride": 64})])
def test_evaluate_stage_bad_params_exit_2(tmp_path, eval_params, key, edit):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"phase1": {"smoke-ref-tiny": {**eval_params, **edit}}}))
    proc = _run(tmp_path, str(ROOT / "stages/evaluate.py"), "--key", key, "--seed", "1", "--out", "res")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res" / "metrics.json").exists()


def test_corpus_and_reference_stages(tmp_path):
    params = {"corpora": {"tiny": {"name": "tiny", "max_train_bytes": 120_000, "max_calibration_bytes": 30_000,
                                   "max_evaluation_bytes": 30_000}},
              "reference_models": {"xs": {"name": "xs", "corpus": "tiny", "vocab_size": 300, "hidden_size": 16,
                                          "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
                                          "max_position_embeddings": 64, "train_steps": 5, "batch_size": 2,
                                          "seq_len": 32, "learning_rate": 1e-3, "seed": 0}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _run(tmp_path, str(ROOT / "stages/corpus.py"), "--key", "corpora.tiny", "--out", "data/tiny")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "data/tiny/manifest.json").read_text())
    assert manifest["disjoint"] is True and manifest["splits"]["train"]["n_bytes"] <= 120_000
    proc = _run(tmp_path, str(ROOT / "stages/reference.py"), "--key", "reference_models.xs", "--corpus",
                "data/tiny", "--out", "models/xs")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "models/xs/manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["n_params"] > 0 and manifest["corpus_disjoint"] is True
    assert (tmp_path / "models/xs/model.safetensors").exists() and (tmp_path / "models/xs/tokenizer.json").exists()
    proc = _run(tmp_path, str(ROOT / "stages/reference.py"), "--key", "reference_models.nope", "--corpus",
                "data/tiny", "--out", "models/nope")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
