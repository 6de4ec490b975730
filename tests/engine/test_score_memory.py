"""The score stage's memory knobs and estimate on ref-tiny: the knobs reach the scoring passes, the default leaves
scores bit for bit as they were, the estimate is printed and recorded, and a run that would not fit is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import esa.engine.scoring.memory_check as memory_check

from score_stage import METRICS


def _scores(out: Path) -> dict[str, torch.Tensor]:
    return {f"{metric}/{name}": t for metric in METRICS
            for name, t in load_file(str(out / "scores" / f"{metric}.safetensors")).items()}


def test_bfloat16_accumulators_reach_the_passes_and_are_recorded(run_score, capsys):
    code, out, seen = run_score("bf16", accum_dtype="bfloat16", microbatch=2)
    assert code == 0
    assert {d for key, d in seen.items() if key.endswith(("grad_sum", "grad_sq"))} == {torch.bfloat16}
    assert {d for key, d in seen.items() if key.endswith("act_sq")} == {torch.float32}  # per feature, float32
    manifest = json.loads((out / "manifest.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert manifest["scoring"]["accum_dtype"] == summary["accum_dtype"] == "bfloat16"
    assert manifest["scoring"]["microbatch"] == summary["microbatch"] == 2
    estimate = summary["memory_estimate"]
    assert estimate == manifest["memory_estimate"]
    assert estimate["accum_dtype"] == "bfloat16" and estimate["accumulators"] == ["grad_sum", "grad_sq", "act_sq"]
    assert abs(sum(estimate["parts_gib"].values()) - estimate["total_gib"]) < 1e-3
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("memory estimate")]
    assert printed == [f"memory estimate, score run phase2.bf16 seed 1: {estimate['line']}"]


def test_default_params_score_bit_for_bit_as_before(run_score):
    # Params compiled before the knobs existed (no keys) against what a default spec compiles to now.
    code_old, old, seen_old = run_score("before")
    code_new, new, seen_new = run_score("now", microbatch=1, accum_dtype="float32")
    assert code_old == code_new == 0
    assert {d for key, d in seen_new.items() if not key.endswith("act_sq")} == {torch.float32}
    before, now = _scores(old), _scores(new)
    assert before.keys() == now.keys() and before
    for key in before:
        assert torch.equal(before[key], now[key]), key
    _, bf16, _ = run_score("bf16", accum_dtype="bfloat16")
    assert any(not torch.equal(before[k], t) for k, t in _scores(bf16).items())  # the knob does change something


def test_a_run_that_does_not_fit_is_refused_in_one_line(run_score, monkeypatch, capsys):
    monkeypatch.setattr(memory_check, "available_ram", lambda: 1000)
    code, out, seen = run_score("big")
    assert code == 2 and not seen and not (out / "manifest.json").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("score run phase2.big: needs about ")
    assert "available RAM is 9.3e-07 GiB" in line
    assert line.endswith("try accum_dtype: bfloat16, fewer metrics, fewer matrices via components")


def test_free_memory_is_read_from_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (5 << 30, 80 << 30))
    assert memory_check.available_memory(torch.device("cuda")) == (5 << 30, "free memory on cuda")
    ram, what = memory_check.available_memory(torch.device("cpu"))
    assert what == "available RAM" and ram > 0


def test_without_psutil_ram_comes_from_proc_meminfo(monkeypatch):
    import sys

    if not Path("/proc/meminfo").exists():
        pytest.skip("no /proc/meminfo here")
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    assert memory_check.available_ram() > 0


def test_a_device_map_split_scores_and_selects_as_one_device(run_score, capsys):
    # ref-tiny's later layers to disk through the spec's params: the stage loads with accelerate's dispatch.
    code_one, one, _ = run_score("one")
    code_split, split, _ = run_score("split", device_map="auto", max_memory={"cpu": 150_000})
    assert code_one == code_split == 0
    placed = json.loads((split / "manifest.json").read_text())["device_map"]
    assert "disk" in placed.values() and "cpu" in placed.values()
    assert "the one-device memory check is skipped" in capsys.readouterr().out
    before, after = _scores(one), _scores(split)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    for table in ("topk.parquet", "bottomk.parquet"):
        assert pd.read_parquet(one / table).equals(pd.read_parquet(split / table)), table


def test_a_device_map_with_hutchinson_on_offloaded_weights_is_refused_in_one_line(run_score, capsys):
    code, out, seen = run_score("hess", metrics=["hutchinson_diag"], device_map="auto", max_memory={"cpu": 150_000})
    assert code == 2 and not seen and not (out / "manifest.json").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "hutchinson_diag need every scored weight on a device" in err
