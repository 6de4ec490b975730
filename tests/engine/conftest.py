"""The score stage run in-process on ref-tiny (``run_score``), shared by the memory and placement tests."""

from __future__ import annotations

import pytest
import torch
import yaml

import esa.engine.scoring.passes as passes
from score_stage import METRICS, score_stage

@pytest.fixture
def run_score(tmp_path, monkeypatch, ref_tiny, tiny_corpus):
    """Run the stage in-process on ref-tiny with extra params; return (exit code, out folder, accumulators seen)."""
    seen: dict[str, torch.dtype] = {}
    real = passes.score_model

    def recording(*args, **kwargs):
        result = real(*args, **kwargs)
        seen.update({f"{name}/{key}": t.dtype for name, acc in result.acc.items() for key, t in acc.items()})
        return result

    monkeypatch.setattr(passes, "score_model", recording)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text("name: test\n")

    def run(name: str, **extra):
        params = {"model": str(ref_tiny), "data": str(tiny_corpus), "metrics": METRICS, "modes": ["per_layer"],
                  "topk": 4, "max_windows": 3, "context": 32, "save_scores": True, "seed_plan": [1], **extra}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({"phase2": {name: params}}))
        out = tmp_path / name
        seen.clear()
        code = score_stage().main(["--key", f"phase2.{name}", "--seed", "1", "--spec", "spec.yaml", "--out", str(out)])
        return code, out, dict(seen)

    return run
