"""Fault-tolerance trials: the protected arm's flips never reach the critical set, a matched random set has the same
count per matrix, trials with no flip are not re-evaluated, collapse follows the rule, and trials replay exactly."""

from __future__ import annotations

import math

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.faults.storage import stored_as
from esa.engine.faults.trials import (TrialPlan, critical_masks, matched_random_masks, run_trials, trial_seed)
from esa.engine.models.targets import scored_parameters

KEY = "model.layers.1.mlp.down_proj.weight"


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(config).eval()


def ppl_of(model, ids) -> float:
    with torch.no_grad():
        return math.exp(model(input_ids=ids, labels=ids).loss.item())


def test_the_protected_arm_never_touches_the_critical_set_and_the_random_arm_is_matched():
    model = tiny()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    params = dict(model.named_parameters())
    critical_cells = {KEY: [(r, c) for r in range(16) for c in range(0, 32, 2)]}  # half of the matrix
    original = params[KEY].detach().clone()
    seen: list[bool] = []

    def evaluate() -> float:
        seen.append(bool(torch.equal(params[KEY].detach()[:, ::2], original[:, ::2])))
        return ppl_of(model, ids)

    with stored_as(model, "int8") as stored:
        original = params[KEY].detach().clone()  # the int8-decoded values
        critical = critical_masks(stored, critical_cells)
        random = matched_random_masks(stored, critical, torch.Generator().manual_seed(1))
        assert int(random[KEY].sum()) == int(critical[KEY].sum()) == 256
        assert not (random[KEY] & critical[KEY]).any()
        baseline = ppl_of(model, ids)
        plan = TrialPlan(rates=[0.0, 0.02], trials=3, collapse_factor=10.0)
        rows = run_trials(stored, evaluate, baseline_ppl=baseline, plan=plan,
                          arms={"none": None, "critical": critical, "random": random}, seed=5, progress=False)
    evaluated = [r for r in rows if r["status"] != "no_flips"]
    assert len(evaluated) == len(seen) == 9  # rate 0 draws nothing: never evaluated
    assert all(r["n_flips"] == 0 and r["ppl"] == baseline and not r["collapsed"] for r in rows if r["rate"] == 0)
    for row, untouched in zip(evaluated, seen):
        if row["arm"] == "critical":
            assert untouched
    assert not all(untouched for row, untouched in zip(evaluated, seen) if row["arm"] == "none")
    critical_rows = [r for r in rows if r["arm"] == "critical" and r["rate"] > 0]
    total = sum(t.numel for t in scored_parameters(model))
    assert all(r["eligible_bits"] == (total - 256) * 8 and r["n_exempt"] == 256 for r in critical_rows)


def test_collapse_is_a_non_finite_loss_or_ppl_past_the_factor():
    model = tiny()
    values = iter([5.0, 11.0, math.nan, math.inf, 10.0, 3.0])
    with stored_as(model, "fp32") as stored:
        rows = run_trials(stored, lambda: next(values), baseline_ppl=1.0, plan=TrialPlan([0.5], 6, 10.0),
                          arms={"none": None}, seed=0, progress=False)
    assert [r["collapsed"] for r in rows] == [False, True, True, True, False, False]
    assert [r["status"] for r in rows] == ["ok", "ok", "diverged", "diverged", "ok", "ok"]
    assert all(r["n_flips"] > 0 for r in rows)


def test_trials_replay_exactly_and_every_trial_has_its_own_stream():
    model = tiny()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    plan = TrialPlan(rates=[1e-3], trials=4, collapse_factor=10.0)
    with stored_as(model, "bf16") as stored:
        baseline = ppl_of(model, ids)
        first = run_trials(stored, lambda: ppl_of(model, ids), baseline_ppl=baseline, plan=plan,
                           arms={"none": None}, seed=3, progress=False)
        again = run_trials(stored, lambda: ppl_of(model, ids), baseline_ppl=baseline, plan=plan,
                           arms={"none": None}, seed=3, progress=False)
    assert first == again
    assert len({r["n_flips"] for r in first}) > 1 or len({r["ppl"] for r in first}) > 1
    seeds = {trial_seed(s, f, i, t, a) for s in (0, 1) for f in ("fp32", "int8") for i in range(3) for t in range(5)
             for a in ("none", "critical")}
    assert len(seeds) == 2 * 2 * 3 * 5 * 2
