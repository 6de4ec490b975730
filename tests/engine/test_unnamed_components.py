"""Scored matrices no component rule names are reported: a warning line, summary.json and the Phase-2 page."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from arch_zoo import tiny
from esa.engine.models.targets import scored_parameters, unnamed_components, unnamed_warning
from esa.report.tables_phase2 import unnamed_components_sentence

ROOT = Path(__file__).resolve().parents[2]


def with_mystery(model: torch.nn.Module, layers) -> torch.nn.Module:
    """Adds a module under a made-up name to each layer (scored, never run)."""
    for layer in layers:
        layer.mystery = torch.nn.Linear(8, 4, bias=False)
    return model


def test_named_families_report_nothing():
    assert unnamed_components(scored_parameters(tiny("gpt2"))) is None


def test_made_up_module_is_counted_with_its_share():
    model = tiny("qwen2")
    with_mystery(model, model.model.layers)
    targets = scored_parameters(model)
    total = sum(t.numel for t in targets)
    unnamed = unnamed_components(targets, examples=1)
    assert unnamed == {"n_tensors": 2, "n_weights": 64, "share": 64 / total,
                       "examples": ["model.layers.0.mystery.weight"]}
    line = unnamed_warning(unnamed)
    assert line.startswith(f"warning: 2 scored matrices ({100 * 64 / total:.3g}% of scored weights)")
    assert line.endswith("'other': model.layers.0.mystery.weight and 1 more")


def _load_stage():
    spec = importlib.util.spec_from_file_location("score_stage", ROOT / "stages/score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_score_stage_warns_and_records_the_unnamed_matrices(tmp_path, monkeypatch, capsys, ref_tiny, tiny_corpus):
    import esa.engine.models.loading as loading

    real_load = loading.load_model

    def load_with_mystery(path, dtype="float32", device="cpu", **settings):
        model, tokenizer = real_load(path, dtype=dtype, device=device, **settings)
        return with_mystery(model, model.model.layers[:1]), tokenizer

    monkeypatch.setattr(loading, "load_model", load_with_mystery)
    params = {"model": str(ref_tiny), "data": str(tiny_corpus), "metrics": ["magnitude"], "modes": ["per_layer"],
              "topk": 4, "max_windows": 2, "context": 32, "save_scores": False}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"phase2": {"mystery": params}}))
    (tmp_path / "spec.yaml").write_text("name: test\n")
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    code = _load_stage().main(["--key", "phase2.mystery", "--seed", "1", "--spec", "spec.yaml", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    unnamed = summary["unnamed_components"]
    assert unnamed["n_tensors"] == 1 and unnamed["examples"] == ["model.layers.0.mystery.weight"]
    assert unnamed["share"] == pytest.approx(32 / summary["n_scored_weights"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [unnamed_warning(unnamed)]

    # The Phase-2 page's line, and none for a summary without the field (older results) or with nothing unnamed.
    run = SimpleNamespace(id="mystery", seeds=[1, 2, 3])
    results = SimpleNamespace(per_seed=lambda r, name: {1: summary, 2: {"n_windows": 2}, 3: {
        "unnamed_components": None}})
    sentence = unnamed_components_sentence([run], results)
    assert sentence.startswith("**Unnamed components:** `mystery` 1 matrix (")
    assert "`model.layers.0.mystery.weight`" in sentence and "`other`" in sentence
    older = SimpleNamespace(per_seed=lambda r, name: {1: {"n_windows": 2}, 2: {"unnamed_components": None}})
    assert unnamed_components_sentence([run], older) is None
