"""Perturbations change exactly the touched elements, restore bit-exactly, and hurt where they should."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.perturbation.controls import borrow_scores, random_k, super_set
from esa.engine.perturbation.apply import (REGISTRY, AdaptiveParams, BitFlipParams, CorrelatedParams, GaussParams,
                                GradStepParams, RestoreError, ScaleParams, SignFlipParams, ZeroParams, apply,
                                checksum, params_from_spec, perturbed, verify_restored)
from esa.engine.scoring.select import Selector
from esa.engine.models.targets import scored_parameters

IV = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 64, (4, 24), generator=torch.Generator().manual_seed(1))


def _loss(model, ids) -> torch.Tensor:
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def _selection(model, k=3, mode="per_layer", score=None, **kw):
    sel = Selector(k, mode)
    for t in scored_parameters(model, **kw):
        sel.add(t, t.weight().abs() if score is None else score[t.name])
    return super_set(sel.result().assign(metric="m", mode=mode), k)


def _snapshot(params) -> dict[str, torch.Tensor]:
    return {n: p.detach().view(IV[p.dtype]).clone() for n, p in params.items()}


def _changed(params, snap) -> set[tuple[str, int]]:
    out = set()
    for n, p in params.items():
        diff = torch.nonzero((p.detach().view(IV[p.dtype]) != snap[n]).reshape(-1)).flatten()
        out |= {(n, int(i)) for i in diff}
    return out


def _keys(df) -> set[tuple[str, int]]:
    return {(t, int(i)) for t, i in zip(df["tensor"], df["flat_index"])}


def _touched(applied) -> set[tuple[str, int]]:
    return {(s.tensor, int(i)) for s in applied.saved for i in s.index}


def _grads(model, ids) -> dict[str, torch.Tensor]:
    model.zero_grad()
    _loss(model, ids).backward()
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad()
    return out


CASES = [
    ("zero", ZeroParams()),
    ("sign_flip", SignFlipParams()),
    ("scale", ScaleParams(3.0)),
    ("gauss_noise", GaussParams(0.5)),
    ("gauss_noise", GaussParams(0.5, "tensor_std")),
    ("bit_flip", BitFlipParams("exponent_msb")),
    ("bit_flip", BitFlipParams(3)),
    ("bit_flip", BitFlipParams("random", prob=0.5)),
    ("grad_step", GradStepParams(0.1)),
    ("grad_step", GradStepParams(0.01, "descend", "abs")),
    ("adaptive", AdaptiveParams(0.5)),
    ("correlated", CorrelatedParams("row", "sign_flip")),
    ("correlated", CorrelatedParams("col", "gauss_noise", 0.3)),
    ("correlated", CorrelatedParams("head", "zero", others="matrix")),
    ("correlated", CorrelatedParams("matrix", "sign_flip")),
]


def test_registry_lists_every_perturbation():
    assert sorted(REGISTRY) == sorted({"zero", "sign_flip", "scale", "gauss_noise", "bit_flip", "grad_step",
                                       "correlated", "adaptive"})
    spec = {"scale": 1.0, "sigma_mode": "tensor_std", "prob": 0.25, "bit": 7, "direction": "descend",
            "unit": "head", "inner": "gauss_noise"}
    assert params_from_spec("gauss_noise", spec, 0.3) == GaussParams(0.3, "tensor_std")
    assert params_from_spec("bit_flip", spec) == BitFlipParams(7, 0.25)
    assert params_from_spec("scale", spec, 4.0) == ScaleParams(4.0)
    assert params_from_spec("grad_step", spec, 0.2) == GradStepParams(0.2, "descend")
    assert params_from_spec("correlated", spec).unit == "head"
    assert params_from_spec("zero", spec) == ZeroParams()
    with pytest.raises(TypeError):
        apply({}, pd.DataFrame(columns=["tensor", "expert", "flat_index"]), "zero", ScaleParams(2.0))


@pytest.mark.parametrize("name, p", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_changes_exactly_the_touched_elements_and_restores(llama, tokens, name, p):
    model = copy.deepcopy(llama)
    params = dict(model.named_parameters())
    sel = _selection(model)
    snap = _snapshot(params)
    before = {m: checksum(model, method=m) for m in ("sha256", "crc32", "intsum")}
    grads = _grads(model, tokens) if name == "grad_step" else None
    applied = apply(model, sel, name, p, seed=3, grad=grads)
    touched = _touched(applied)
    assert _changed(params, snap) == touched  # every touched element changed, nothing else did
    assert applied.n_touched == len(touched) == applied.n_changed
    if name == "correlated":
        assert touched > _keys(sel)
    elif name == "bit_flip" and p.prob < 1:
        # per matrix: 3 targeted weights each, round(0.5·3) = 2 flipped (half up) in every matrix
        assert touched < _keys(sel) and len(touched) == 2 * sel["tensor"].nunique()
    else:
        assert touched == _keys(sel)
    perturbed_state = _snapshot(params)
    applied.restore()
    assert not _changed(params, snap)
    for m, cs in before.items():
        verify_restored(cs, model)
        assert checksum(model, method=m).digest == cs.digest
    # the same seed reproduces the same new values
    again = apply(model, sel, name, p, seed=3, grad=grads)
    assert not _changed(params, perturbed_state)
    again.restore()


def test_values_of_the_deterministic_perturbations(llama, tokens):
    model = copy.deepcopy(llama)
    params = dict(model.named_parameters())
    sel = _selection(model)
    idx = {t: torch.tensor(g["flat_index"].to_numpy()) for t, g in sel.groupby("tensor")}
    old = {t: params[t].detach().reshape(-1)[i].clone() for t, i in idx.items()}

    def new():
        return {t: params[t].detach().reshape(-1)[i].clone() for t, i in idx.items()}

    grads = _grads(model, tokens)
    expect = {
        "scale": (ScaleParams(3.0), lambda t, w: w * 3.0),
        "sign_flip": (SignFlipParams(), lambda t, w: -w),
        "zero": (ZeroParams(), lambda t, w: torch.zeros_like(w)),
        "grad_step": (GradStepParams(0.1), lambda t, w: w + 0.1 * w.abs() * torch.sign(grads[t].reshape(-1)[idx[t]])),
    }
    for name, (p, fn) in expect.items():
        with perturbed(model, sel, name, p, seed=0, grad=grads):
            got = new()
        for t in idx:
            assert torch.equal(got[t], fn(t, old[t])), (name, t)
    descend = GradStepParams(0.01, "descend", "abs")
    with perturbed(model, sel, "grad_step", descend, grad=lambda: grads):
        got = new()
    for t in idx:
        assert torch.equal(got[t], old[t] - 0.01 * torch.sign(grads[t].reshape(-1)[idx[t]]))


def test_gauss_noise_sigma_rules_statistically():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(400, 500) * 0.05)
    flat = np.arange(0, w.numel(), 2)  # half of the weights
    sel = pd.DataFrame({"tensor": "w", "expert": pd.array([None] * len(flat), dtype="Int64"), "flat_index": flat,
                        "row": flat // 500, "col": flat % 500})
    old = w.detach().reshape(-1)[flat].clone()
    with perturbed({"w": w}, sel, "gauss_noise", GaussParams(0.1), seed=1):
        new = w.detach().reshape(-1)[flat].clone()
    rel = (new - old) / old.abs()
    assert abs(rel.std().item() - 0.1) < 0.002 and abs(rel.mean().item()) < 0.002
    std = w.detach().std().item()
    with perturbed({"w": w}, sel, "gauss_noise", GaussParams(0.1, "tensor_std"), seed=1):
        new = w.detach().reshape(-1)[flat].clone()
    assert abs((new - old).std().item() / (0.1 * std) - 1) < 0.02
    with perturbed({"w": w}, sel, "gauss_noise", GaussParams(0.1), seed=2):
        other = w.detach().reshape(-1)[flat].clone()
    assert not torch.equal(other, new)


def _direct(values, dtype=torch.float32):
    w = torch.nn.Parameter(torch.full((4, 8), 0.25, dtype=dtype))
    flat = np.array([1, 6, 9, 20, 31])[: len(values)]
    with torch.no_grad():
        w.view(-1)[torch.tensor(flat)] = torch.tensor(values, dtype=dtype)
    sel = pd.DataFrame({"tensor": "w", "expert": pd.array([None] * len(flat), dtype="Int64"), "flat_index": flat,
                        "score": np.arange(len(flat), 0, -1, dtype=float)})
    return {"w": w}, sel


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_non_finite_results_are_counted_and_restored_exactly(dtype):
    params, sel = _direct([1.0, 1.5, -1.25, 0.75, 1.0], dtype)
    snap = _snapshot(params)
    cs = checksum(params)
    applied = apply(params, sel, "bit_flip", BitFlipParams("exponent_msb"))
    w = params["w"].detach().reshape(-1)
    assert applied.n_nonfinite == 4 and applied.diverged  # 0.75 becomes 0.75·2^(bias+1): finite
    assert torch.isinf(w[1]) and torch.isnan(w[6]) and torch.isnan(w[9]) and torch.isfinite(w[20])
    applied.restore()
    assert not _changed(params, snap)
    verify_restored(cs, params)
    applied = apply(params, sel, "scale", ScaleParams(1e39))  # beyond fp32 (and fp16/bf16) range: inf
    assert applied.n_nonfinite == 5 and torch.isinf(params["w"].detach().reshape(-1)[[1, 6, 9, 20, 31]]).all()
    applied.restore()
    assert not _changed(params, snap)
    verify_restored(cs, params)


def test_nan_payload_of_a_weight_survives_perturb_and_restore():
    params, sel = _direct([1.0, 2.0])
    with torch.no_grad():
        params["w"].view(torch.int32).view(-1)[6] = 0x7FC12345  # a NaN with a payload
    snap = _snapshot(params)
    for name in ("zero", "sign_flip", "gauss_noise"):
        with perturbed(params, sel, name, verify="all"):
            pass
        assert not _changed(params, snap)
    assert params["w"].detach().view(torch.int32).view(-1)[6].item() == 0x7FC12345


def test_saved_state_is_proportional_to_the_touched_elements():
    big = torch.nn.Parameter(torch.randn(1000, 1000))
    packed = torch.nn.Parameter(torch.randn(4, 300, 200, dtype=torch.bfloat16))
    flat = np.array([5, 999_999, 123_456])
    sel = pd.DataFrame({"tensor": ["big"] * 3 + ["packed"] * 2,
                        "expert": pd.array([None, None, None, 3, 3], dtype="Int64"),
                        "flat_index": np.r_[flat, 3 * 60_000 + 7, 3 * 60_000 + 59_999]})
    applied = apply({"big": big, "packed": packed}, sel, "gauss_noise", GaussParams(0.1))
    assert applied.n_touched == 5
    assert applied.saved_bytes == 3 * (8 + 4) + 2 * (8 + 2)
    for s in applied.saved:  # own storage of exactly the touched size, not views into the parameters
        for t in (s.index, s.old):
            assert t.untyped_storage().nbytes() == t.numel() * t.element_size()
            assert t.untyped_storage().data_ptr() not in (big.untyped_storage().data_ptr(),
                                                          packed.untyped_storage().data_ptr())
    applied.restore()


def test_adaptive_strength_follows_the_score_and_needs_scores():
    params, sel = _direct([0.5, -1.0, 2.0, 0.25, 1.0])
    fi = torch.tensor(sel["flat_index"].to_numpy())
    old = params["w"].detach().reshape(-1)[fi].clone()
    with perturbed(params, sel, "adaptive", AdaptiveParams(0.5), seed=9):
        new = params["w"].detach().reshape(-1)[fi].clone()
    z = torch.randn(5, generator=torch.Generator().manual_seed(9))
    score = torch.tensor(sel["score"].to_numpy(), dtype=torch.float64)
    expected = old + 0.5 * old.abs() * (score / score.max()).float() * z
    assert torch.equal(new, expected)
    with pytest.raises(ValueError, match="borrow_scores"):
        apply(params, sel.assign(score=np.nan), "adaptive", AdaptiveParams(0.5))
    assert torch.equal(params["w"].detach().reshape(-1)[fi], old)  # a failed apply leaves the weights as they were


def test_adaptive_on_a_control_with_borrowed_scores(llama):
    model = copy.deepcopy(llama)
    params = dict(model.named_parameters())
    sel = _selection(model)
    ctrl = borrow_scores(random_k(sel, params, 4), sel)
    snap = _snapshot(params)
    top = float(sel["score"].max())
    with perturbed(model, ctrl, "adaptive", AdaptiveParams(0.5, max_score=top), seed=4) as applied:
        assert _changed(params, snap) == _keys(ctrl) == _touched(applied)
    assert not _changed(params, snap)


def test_checksums_detect_every_single_bit_and_swaps():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        p = {"a": torch.nn.Parameter(torch.randn(37, 11).to(dtype)), "b": torch.nn.Parameter(torch.randn(5).to(dtype))}
        ref = {m: checksum(p, method=m) for m in ("sha256", "crc32", "intsum")}
        raw = p["a"].detach().view(IV[dtype]).view(-1)
        width = 32 if dtype == torch.float32 else 16
        for _ in range(40):
            i, bit = int(rng.integers(raw.numel())), int(rng.integers(width))
            mask = torch.tensor(1 << bit if bit < width - 1 else -(1 << bit), dtype=raw.dtype)
            raw[i] ^= mask
            for m, cs in ref.items():
                with pytest.raises(RestoreError, match="a"):
                    verify_restored(cs, p)
            raw[i] ^= mask
        for cs in ref.values():
            verify_restored(cs, p)
        a, b = raw[3].clone(), raw[200].clone()
        raw[3], raw[200] = b, a  # the same multiset of values in another order
        for m, cs in ref.items():
            assert checksum(p, method=m).digests["a"] != cs.digests["a"], m
        raw[3], raw[200] = a, b
        assert checksum(p, ["b"], "intsum").digests == {"b": ref["intsum"].digests["b"]}


def test_perturbed_restores_on_error_and_apply_is_all_or_nothing(llama, tokens):
    model = copy.deepcopy(llama)
    params = dict(model.named_parameters())
    sel = _selection(model)
    snap = _snapshot(params)
    ref = checksum(model, method="crc32")
    with pytest.raises(RuntimeError, match="boom"):
        with perturbed(model, sel, "zero", reference=ref, verify="all"):
            assert _changed(params, snap)
            raise RuntimeError("boom")
    assert not _changed(params, snap)
    grads = _grads(model, tokens)
    del grads[sorted(set(sel["tensor"]))[-1]]  # the last matrix has no gradient: fails after the others were written
    with pytest.raises(KeyError, match="no gradient"):
        apply(model, sel, "grad_step", GradStepParams(0.1), grad=grads)
    assert not _changed(params, snap)
    with pytest.raises(ValueError, match="row/col disagree"):
        apply(model, sel.assign(row=sel["row"] + 1), "zero")
    applied = apply(model, sel, "zero")
    with pytest.raises(RestoreError):  # a checksum taken while perturbed cannot match the restored model
        bad = checksum(model, sorted(set(sel["tensor"])), "crc32")
        applied.restore()
        verify_restored(bad, model)


def test_grad_step_direction_moves_the_loss(llama, tokens):
    model = copy.deepcopy(llama)
    grads = _grads(model, tokens)
    score = {n: (p.detach() * grads[n]).abs() for n, p in model.named_parameters()}
    sel = _selection(model, k=5, score=score)
    with torch.no_grad():
        base = _loss(model, tokens).item()
        with perturbed(model, sel, "grad_step", GradStepParams(0.2, "ascend"), grad=grads):
            up = _loss(model, tokens).item()
        with perturbed(model, sel, "grad_step", GradStepParams(0.2, "descend"), grad=grads):
            down = _loss(model, tokens).item()
        assert _loss(model, tokens).item() == base
    assert down < base < up


def test_zeroing_a_critical_weight_hurts_far_more_than_a_random_control():
    """Hidden dim 3 carries a constant; lm_head[7, 3] turns it into a confident (correct) guess of token 7."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1,
                                         tie_word_embeddings=False)).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 3] = 1.0
        for layer in model.model.layers:  # nothing writes into dim 3 of the residual stream
            layer.self_attn.o_proj.weight[3] = 0.0
            layer.mlp.down_proj.weight[3] = 0.0
        model.lm_head.weight[7, 3] = 6.0
    g = torch.Generator().manual_seed(2)
    ids = torch.where(torch.rand(8, 32, generator=g) < 0.9, 7, torch.randint(0, 64, (8, 32), generator=g))
    params = dict(model.named_parameters())
    sel = _selection(model, k=4, include_lm_head=True)
    assert ("lm_head.weight", 7 * 16 + 3) in _keys(sel)
    ref = checksum(model)
    with torch.no_grad():
        base = _loss(model, ids).item()
        with perturbed(model, sel, "zero", reference=ref, verify="all"):
            d_super = _loss(model, ids).item() - base
        d_random = []
        for seed in range(3):
            with perturbed(model, random_k(sel, params, seed), "zero", reference=ref, verify="all"):
                d_random.append(abs(_loss(model, ids).item() - base))
    assert base < 2.0 and d_super > 2.0
    assert d_super > 20 * max(d_random)
