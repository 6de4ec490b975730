"""Run kind `faults`: the fault stage on ref-tiny (fp32 and int8 storage, two rates, three arms, and an int8
attack), checked against a trial replayed here from its seed; its compile rule; its graders; the model on disk is
never written."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from grader_outcomes import CRITERIA_BY_RUN_KIND, check_outcomes

STAGE = "faults.security/ft/seed1"
FORMATS, RATES, ARMS, TRIALS = ["fp32", "int8"], [1e-6, 1e-3], ["none", "critical", "random"], 3


def model_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def fault_run(kinds_project, ref_tiny):
    before = model_hashes(ref_tiny)
    out = kinds_project.run(STAGE)
    return out, pd.read_parquet(out / "trials.parquet"), pd.read_parquet(out / "attack.parquet"), before


def test_one_row_per_trial_and_the_critical_arm_spares_the_critical_set(fault_run, kinds_project):
    out, trials, _, _ = fault_run
    keys = sorted(zip(trials["format"], trials["rate"], trials["trial"], trials["arm"]))
    assert keys == sorted((f, r, t, a) for f in FORMATS for r in RATES for t in range(TRIALS) for a in ARMS)
    topk = pd.read_parquet(kinds_project.root / "results/phase2/sc/seed1/topk.parquet")
    n_critical = int(((topk["metric"] == "grad_x_weight") & (topk["mode"] == "per_layer") & (topk["rank"] < 4)).sum())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_critical"] == n_critical > 0
    assert set(trials.loc[trials["arm"] != "none", "n_exempt"]) == {n_critical}
    width = {"fp32": 32, "int8": 8}
    for fmt, rows in trials.groupby("format"):
        none = rows[rows["arm"] == "none"]["eligible_bits"].iloc[0]
        assert set(rows[rows["arm"] != "none"]["eligible_bits"]) == {none - n_critical * width[fmt]}
    assert (trials.loc[trials["n_flips"] == 0, "status"] == "no_flips").all()
    assert (trials.loc[trials["rate"] == 1e-3, "n_flips"] > 0).all()


def test_the_model_on_disk_is_never_written(fault_run, ref_tiny):
    assert model_hashes(ref_tiny) == fault_run[3]


def test_a_trial_replayed_from_its_seed_gives_the_recorded_flips_and_ppl(kinds_project, fault_run, ref_tiny):
    from esa.engine.data.corpus import load_split
    from esa.engine.evaluation.evaluate import evaluate_windows, prepare_windows
    from esa.engine.faults.bit_errors import bit_errors, draw_bit_errors
    from esa.engine.faults.storage import stored_as
    from esa.engine.faults.trials import trial_seed
    from esa.engine.models.loading import load_model

    _, trials, _, _ = fault_run
    params = kinds_project.params["security"]["ft"]
    model, tok = load_model(str(ref_tiny))
    docs = load_split(kinds_project.root / params["data"], "evaluation")
    prepared = prepare_windows(tok, docs, context=params["context"], stride=params["stride"],
                               max_windows=params["max_windows"], seed=params["eval_seed"], folds=params["folds"],
                               fold=params["fold"])
    row = trials[(trials["format"] == "int8") & (trials["rate"] == 1e-3) & (trials["arm"] == "none")
                 & (trials["trial"] == 2)].iloc[0]
    with stored_as(model, "int8") as stored:
        generator = torch.Generator().manual_seed(trial_seed(1, "int8", 1, 2, "none"))
        draw = draw_bit_errors(stored, 1e-3, generator)
        assert draw.n_flips == row["n_flips"]
        with bit_errors(stored, draw):
            frame = evaluate_windows(model, prepared, batch_size=params["batch_size"], progress=False)[1]
    nll = frame["nll_sum"].to_numpy(dtype=float)
    if np.isfinite(nll).all() and math.isfinite(value := math.exp(nll.sum() / frame["n_tokens"].sum())):
        assert row["ppl"] == pytest.approx(value, rel=1e-6)
    else:
        assert math.isinf(row["ppl"]) and row["status"] == "diverged"


def test_the_attack_records_every_flip_until_collapse_or_budget(fault_run):
    _, _, attack, _ = fault_run
    assert set(attack["arm"]) == {"unrestricted", "noncritical", "random"} and set(attack["format"]) == {"int8"}
    for arm, rows in attack.groupby("arm"):
        assert rows["step"].tolist() == list(range(1, len(rows) + 1)) and len(rows) <= 3
        collapsed = rows["collapsed"].tolist()
        assert not any(collapsed[:-1]) and (collapsed[-1] or len(rows) == 3), arm
        assert all(0 <= b < 8 for b in rows["bit"])
        assert len(set(zip(rows["key"], rows["index"], rows["bit"]))) == len(rows)


def test_compile_reads_the_critical_set_of_the_paired_seed(kinds_project):
    stages = kinds_project.stages
    assert sorted(n for n in stages if n.startswith("faults.")) == ["faults.security/ft/seed1",
                                                                    "faults.security/ft/seed2"]
    for part, seed in enumerate((1, 2)):
        stage = stages[f"faults.security/ft/seed{seed}"]
        assert f"--critical results/phase2/sc/seed{seed} " in stage["cmd"] and f"--part {part} " in stage["cmd"]
        assert f"results/phase2/sc/seed{seed}/topk.parquet" in stage["deps"]
    params = kinds_project.params["security"]["ft"]
    assert params["critical"] == {"metric": "grad_x_weight", "mode": "per_layer", "k": 4}
    assert (params["max_windows"], params["attack_parts"], params["critical_seeds"]) == (2, 2, [1, 2])
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["grade.security"]["outs"]]
    assert {"results/security/faults.parquet", "results/security/attacks.parquet"} <= set(outs)


def test_the_grade_stage_grades_the_criteria(kinds_project):
    root = kinds_project.run("grade.security")
    grades = json.loads((root / "results/security/grades.json").read_text())
    gain, ftc = grades["criteria"]["gain"], grades["criteria"]["ftc"]
    assert gain["status"] in ("pass", "fail", "inconclusive") and gain["value"] is not None
    assert "collapse rate(random) − collapse rate(critical), int8 at rate 0.001" in gain["reason"]
    assert ftc["status"] in ("pass", "fail", "inconclusive") and "flips to collapse (unrestricted)" in ftc["reason"]
    assert len(pd.read_parquet(root / "results/security/faults.parquet")) == 2 * 2 * 2 * 3 * 3


@pytest.mark.parametrize("criterion", CRITERIA_BY_RUN_KIND["faults"])
def test_graders_pass_fail_and_are_inconclusive_in_tests_grading(grading_record, criterion):
    check_outcomes(grading_record, criterion)
