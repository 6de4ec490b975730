"""Progressive bit attack: on a model with one planted critical weight it flips exactly that bit first and
collapses in one flip, a restricted attacker never touches it, its first-order estimate and real loss match hand
computations, the random control is distinct, exempt-free, reproducible and slower, and every attack leaves the
parameters bit for bit as they were."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.faults.attack import flip_gains, progressive_bit_attack, random_bit_attack, rank_candidates
from esa.engine.faults.bit_errors import BitErrorDraw, bit_errors
from esa.engine.faults.storage import stored_as
from esa.engine.perturbation.bitflip import int_view_dtype

V, F_DIM = 8, 16  # vocabulary = hidden size (one-hot residual), MLP width
ROW, PLANT, BIG = 3, 5, 9  # the planted weight is down[ROW, PLANT]; down[ROW, BIG] = B sets its row's int8 scale
B = 8.0
UP, DOWN = "mlp.up_proj.weight", "mlp.down_proj.weight"
PLANTED = ROW * F_DIM + PLANT  # parameter flat index of the planted weight


class Copy(torch.nn.Module):
    """Copy task: one-hot residual h = e_x + down(relu(up(e_x))), logits = 10·h. The embedding and head are not
    scored, so the attack sees up_proj (F×V) and down_proj (V×F)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(V, V)
        self.mlp = torch.nn.Module()
        self.mlp.up_proj = torch.nn.Linear(V, F_DIM, bias=False)
        self.mlp.down_proj = torch.nn.Linear(F_DIM, V, bias=False)
        self.lm_head = torch.nn.Linear(V, V, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed_tokens(ids)
        h = h + self.mlp.down_proj(torch.relu(self.mlp.up_proj(h)))
        return self.lm_head(h)


def planted() -> Copy:
    """Channel PLANT fires 1.0 on every token and channel BIG never fires. down[ROW, PLANT] holds int8 code -1
    (0xFF) of its row's scale B/127: flipping bit 7 makes it code 127 = +B, which adds B to h_ROW on every token
    and drowns the copy logit (10 vs 10·B) everywhere. Every other flip moves a logit by about 1 at most."""
    torch.manual_seed(0)
    model = Copy()
    with torch.no_grad():
        model.embed_tokens.weight.copy_(torch.eye(V))
        model.lm_head.weight.copy_(10 * torch.eye(V))
        up, down = model.mlp.up_proj.weight, model.mlp.down_proj.weight
        up.normal_(0, 0.02)
        down.normal_(0, 0.02)
        up[PLANT] = 1.0
        up[BIG] = -1.0
        down[ROW, BIG] = B
        down[ROW, PLANT] = -B / 127
    return model


# The attack batch lacks token ROW, so raising h_ROW can only hurt it: the gradient on down[ROW] is positive and
# the first-order estimate, not just the real loss, prefers the +128-step flip. The held-out batch has every token.
ATTACK_IDS = torch.tensor([5, 1, 4, 1, 5, 2, 6, 7, 0, 4, 2, 6])
EVAL_IDS = torch.tensor([0, 7, 2, 5, 3, 3, 1, 6, 4, 0, 5, 2, 7, 1, 6, 4])


def loss_on(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(ids), ids)


def judge_for(model: torch.nn.Module, factor: float = 10.0):
    """Held-out PPL, collapsed when non-finite or past ``factor`` × the PPL at the time the judge is made."""
    with torch.no_grad():
        base = math.exp(float(loss_on(model, EVAL_IDS)))

    def judge() -> tuple[float, bool]:
        ppl = math.exp(min(float(loss_on(model, EVAL_IDS)), 700.0))
        return ppl, not math.isfinite(ppl) or ppl > factor * base
    return judge


def never(model: torch.nn.Module):
    def judge() -> tuple[float, bool]:
        return float(loss_on(model, EVAL_IDS)), False
    return judge


def raw(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().reshape(-1).view(int_view_dtype(p.dtype)).clone() for n, p in model.named_parameters()}


def assert_identical(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = raw(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[n], before[n]) for n in before)


def test_the_attack_flips_the_planted_bit_first_and_a_restricted_attacker_never_touches_it():
    model = planted()
    before = raw(model)
    with stored_as(model, "int8") as stored:
        assert int(stored.read(DOWN, torch.tensor([PLANTED]))[0]) == -1
        inside = raw(model)
        result = progressive_bit_attack(stored, lambda: loss_on(model, ATTACK_IDS), judge_for(model), budget=5,
                                        progress=False)
        assert_identical(model, inside)
        first = result.flips[0]
        assert (first.key, first.index, first.bit) == (DOWN, PLANTED, 7)
        assert first.old_value == pytest.approx(-B / 127) and first.new_value == pytest.approx(B)
        assert result.flips_to_collapse == 1 and len(result.flips) == 1 and first.collapsed
        assert result.arm == "progressive" and result.format == "int8"

        exempt = {DOWN: torch.zeros(V, F_DIM, dtype=torch.bool)}
        exempt[DOWN][ROW, PLANT] = True
        restricted = progressive_bit_attack(stored, lambda: loss_on(model, ATTACK_IDS), judge_for(model),
                                            budget=6, exempt=exempt, progress=False)
        assert_identical(model, inside)
        assert restricted.arm == "progressive_exempt" and len(restricted.flips) >= 1
        assert all((f.key, f.index) != (DOWN, PLANTED) for f in restricted.flips)
        # Without the planted weight no single flip comes close: the first one raises the loss far less.
        assert restricted.flips[0].loss < first.loss / 10
    assert_identical(model, before)


def hand_grads(model: Copy, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dL/d up and dL/d down of the mean cross-entropy, by the chain rule written out (no autograd)."""
    with torch.no_grad():
        x = torch.eye(V)[ids]  # (N, V)
        up, down = model.mlp.up_proj.weight, model.mlp.down_proj.weight
        pre = x @ up.T
        a = torch.relu(pre)
        h = x + a @ down.T
        p = torch.softmax(10 * h, dim=1)
        dh = 10 * (p - x) / len(ids)  # dL/dh; lm_head is 10·I and the targets are the inputs
        d_down = dh.T @ a
        d_up = ((dh @ down) * (pre > 0)).T @ x
    return d_up, d_down


def test_the_first_order_estimate_and_the_real_loss_match_hand_computations():
    model = planted()
    loss_fn = lambda: loss_on(model, ATTACK_IDS)  # noqa: E731
    with stored_as(model, "int8") as stored:
        d_up, d_down = hand_grads(model, ATTACK_IDS)
        scale_down, scale_up = B / 127, 1.0 / 127
        # The planted flip: code -1 → 127 moves the weight by 128 steps.
        hand = float(d_down[ROW, PLANT]) * 128 * scale_down
        result = progressive_bit_attack(stored, loss_fn, never(model), budget=1, progress=False)
        flip = result.flips[0]
        assert flip.estimate == pytest.approx(hand, rel=1e-5)
        # Another chosen (weight, bit): up[PLANT, 2] holds code 127; bit 7 makes it -1, 128 steps down.
        code = int(stored.read(UP, torch.tensor([PLANT * V + 2]))[0])
        assert code == 127
        gains = flip_gains(stored, UP, 7, d_up)
        assert float(gains[PLANT, 2]) == pytest.approx(float(d_up[PLANT, 2]) * -128 * scale_up, rel=1e-5)
        # Bit 0 of code -1 (0xFF → 0xFE = -2): one step down.
        assert float(flip_gains(stored, DOWN, 0, d_down)[ROW, PLANT]) == pytest.approx(
            float(d_down[ROW, PLANT]) * -scale_down, rel=1e-5)

        # The recorded loss is the loss of a separate forward with that flip in place.
        draw = BitErrorDraw({flip.key: (torch.tensor([flip.index]), torch.tensor([flip.bit]))}, 0, 0.0)
        with bit_errors(stored, draw), torch.no_grad():
            assert float(loss_fn()) == flip.loss
            assert float(model.mlp.down_proj.weight[ROW, PLANT]) == pytest.approx(127 * scale_down)
        with torch.no_grad():
            assert result.baseline_loss == float(loss_fn())

        # A flip already made is never offered again.
        grads = {UP: d_up, DOWN: d_down}
        top = rank_candidates(stored, grads, per_target=1, shortlist=2)
        assert (top[0].key, top[0].index, top[0].bit) == (DOWN, PLANTED, 7)
        again = rank_candidates(stored, grads, per_target=1, shortlist=2, taken={DOWN: {(PLANTED, 7)}})
        assert all((c.key, c.index, c.bit) != (DOWN, PLANTED, 7) for c in again)
        assert again[0].estimate < top[0].estimate


@pytest.mark.parametrize("fmt", ["fp32", "bf16"])
def test_float_storage_collapses_in_one_exponent_flip(fmt):
    model = planted()
    before = raw(model)
    with stored_as(model, fmt) as stored:
        result = progressive_bit_attack(stored, lambda: loss_on(model, ATTACK_IDS), judge_for(model), budget=3,
                                        progress=False)
        flip = result.flips[0]
        exponent = range(23, 31) if fmt == "fp32" else range(7, 15)
        assert result.flips_to_collapse == 1 and flip.bit in exponent
        assert not math.isfinite(flip.new_value) or abs(flip.new_value) > 1e30
        assert not math.isfinite(flip.metric) or flip.metric > 1e6
        # up[PLANT] holds 1.0, whose top exponent bit makes inf: +inf whatever the gradient's sign or size.
        top = 30 if fmt == "fp32" else 14
        for grad in (-torch.ones(F_DIM, V), torch.zeros(F_DIM, V)):
            gains = flip_gains(stored, UP, top, grad)
            assert float(gains[PLANT, 0]) == math.inf
            assert torch.isfinite(gains[:PLANT]).all()  # small weights stay finite (×2^128 at most)
    assert_identical(model, before)


def test_the_random_control_is_distinct_exempt_free_reproducible_and_slower():
    model = planted()
    before = raw(model)
    with stored_as(model, "int8") as stored:
        inside = raw(model)
        exempt = {DOWN: torch.zeros(V, F_DIM, dtype=torch.bool)}
        exempt[DOWN][:4] = True  # a quarter of all weights: 40 flips that ignored it would hit it almost surely

        def run(seed: int):
            return random_bit_attack(stored, never(model), budget=40, generator=torch.Generator().manual_seed(seed),
                                     exempt=exempt, loss_fn=lambda: loss_on(model, ATTACK_IDS), progress=False)
        first, again, other = run(0), run(0), run(1)
        assert_identical(model, inside)
        picks = [(f.key, f.index, f.bit) for f in first.flips]
        assert len(picks) == 40 and len(set(picks)) == 40
        assert picks == [(f.key, f.index, f.bit) for f in again.flips]
        assert picks != [(f.key, f.index, f.bit) for f in other.flips]
        assert all(not (k == DOWN and i < 4 * F_DIM) for k, i, _ in picks)
        assert {b for _, _, b in picks} - set(range(8)) == set()
        assert first.flips_to_collapse is None and first.arm == "random_exempt"
        # Only two weights allowed: a budget of all 16 of their bits must take each exactly once.
        only = {key: torch.ones(stored.targets[key].shape, dtype=torch.bool) for key in (UP, DOWN)}
        only[UP][0, 0] = only[DOWN][7, 15] = False
        every = random_bit_attack(stored, never(model), budget=16, generator=torch.Generator().manual_seed(0),
                                  exempt=only, progress=False)
        assert sorted((f.index, f.bit) for f in every.flips) == sorted(
            [(0, b) for b in range(8)] + [(7 * F_DIM + 15, b) for b in range(8)])
        assert [f.loss for f in first.flips] == [f.loss for f in again.flips] and first.baseline_loss is not None

        attack = progressive_bit_attack(stored, lambda: loss_on(model, ATTACK_IDS), judge_for(model), budget=5,
                                        progress=False)
        control = random_bit_attack(stored, judge_for(model), budget=200, generator=torch.Generator().manual_seed(0),
                                    progress=False)
        assert attack.flips_to_collapse == 1
        assert control.flips_to_collapse is None or control.flips_to_collapse > attack.flips_to_collapse
        with pytest.raises(ValueError, match="exceeds"):
            random_bit_attack(stored, never(model), budget=10**6, generator=torch.Generator(), progress=False)
    assert_identical(model, before)


def tiny_llama(dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(config).to(dtype).eval()


@pytest.mark.parametrize(("dtype", "fmt"), [(torch.float32, "int8"), (torch.bfloat16, "int8"),
                                            (torch.float32, "fp32"), (torch.bfloat16, "bf16")])
def test_a_llama_is_bit_identical_after_the_attack_and_each_loss_is_that_of_the_flips_so_far(dtype, fmt):
    model = tiny_llama(dtype)
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(3))
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    loss_fn = lambda: model(ids, labels=ids).loss.float()  # noqa: E731
    before = raw(model)
    with stored_as(model, fmt) as stored:
        inside = raw(model)
        result = progressive_bit_attack(stored, loss_fn, lambda: (0.0, False), budget=3, shortlist=4,
                                        progress=False)
        assert_identical(model, inside)
        assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
        assert all(p.grad is None for p in model.parameters())
        picks = [(f.key, f.index, f.bit) for f in result.flips]
        assert len(picks) == 3 and len(set(picks)) == 3 and result.flips_to_collapse is None
        for k in range(1, 4):
            flips: dict[str, tuple[list[int], list[int]]] = {}
            for key, index, bit in picks[:k]:
                flips.setdefault(key, ([], []))[0].append(index)
                flips[key][1].append(bit)
            draw = BitErrorDraw({key: (torch.tensor(i), torch.tensor(b)) for key, (i, b) in flips.items()}, 0, 0.0)
            with bit_errors(stored, draw), torch.no_grad():
                loss = float(loss_fn())
            assert (math.inf if math.isnan(loss) else loss) == result.flips[k - 1].loss
        assert result.flips[0].loss > result.baseline_loss
        assert_identical(model, inside)

        # The first commit is the shortlisted flip with the largest real loss, whatever the estimates' order.
        params = {t.name: t.parameter for t in stored.targets.values()}
        for p in params.values():
            p.requires_grad_(True)
        grads = dict(zip(params, torch.autograd.grad(loss_fn(), list(params.values()))))
        for name, p in params.items():
            p.requires_grad_(flags[name])
        shortlist = rank_candidates(stored, grads, per_target=1, shortlist=4)
        assert [c.estimate for c in shortlist] == sorted((c.estimate for c in shortlist), reverse=True)
        real = []
        for c in shortlist:
            draw = BitErrorDraw({c.key: (torch.tensor([c.index]), torch.tensor([c.bit]))}, 0, 0.0)
            with bit_errors(stored, draw), torch.no_grad():
                real.append(float(loss_fn()))
        best = shortlist[real.index(max(real))]
        assert (best.key, best.index, best.bit) == picks[0] and max(real) == result.flips[0].loss
    assert_identical(model, before)


def test_an_error_mid_attack_still_restores_every_bit():
    model = planted()
    before = raw(model)
    calls = []

    def judge() -> tuple[float, bool]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("evaluation failed")
        return 0.0, False
    with stored_as(model, "int8") as stored:
        inside = raw(model)
        with pytest.raises(RuntimeError, match="evaluation failed"):
            progressive_bit_attack(stored, lambda: loss_on(model, ATTACK_IDS), judge, budget=5, progress=False)
        assert_identical(model, inside)
    assert_identical(model, before)


def test_a_budget_spent_without_collapse_is_right_censored():
    model = planted()
    with stored_as(model, "int8") as stored:
        result = progressive_bit_attack(stored, lambda: loss_on(model, ATTACK_IDS), never(model), budget=4,
                                        progress=False)
        assert result.flips_to_collapse is None and len(result.flips) == result.budget == 4
        assert not any(f.collapsed for f in result.flips)
        assert len({(f.key, f.index, f.bit) for f in result.flips}) == 4
        assert (result.flips[0].key, result.flips[0].index, result.flips[0].bit) == (DOWN, PLANTED, 7)
