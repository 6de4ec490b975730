"""Correlated perturbations widen each weight to its row / column / attention head / matrix, and restore."""

import copy

import pandas as pd
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from esa.engine.perturbation.apply import CorrelatedParams, apply, perturbed
from esa.engine.models.targets import component_of

IV = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


def _snapshot(params) -> dict[str, torch.Tensor]:
    return {n: p.detach().view(IV[p.dtype]).clone() for n, p in params.items()}


def _changed(params, snap) -> set[tuple[str, int]]:
    out = set()
    for n, p in params.items():
        diff = torch.nonzero((p.detach().view(IV[p.dtype]) != snap[n]).reshape(-1)).flatten()
        out |= {(n, int(i)) for i in diff}
    return out


def _touched(applied) -> set[tuple[str, int]]:
    return {(s.tensor, int(i)) for s in applied.saved for i in s.index}


def _sel(rows):
    """A selection from (tensor, row, col, cols) tuples of 2-D weights."""
    return pd.DataFrame({"tensor": [r[0] for r in rows], "expert": pd.array([None] * len(rows), dtype="Int64"),
                         "component": [component_of(r[0]) for r in rows], "row": [r[1] for r in rows],
                         "col": [r[2] for r in rows], "flat_index": [r[1] * r[3] + r[2] for r in rows]})


def _cells(params, name, rows=None, cols=None):
    p = params[name]
    r = range(p.shape[0]) if rows is None else rows
    c = range(p.shape[1]) if cols is None else cols
    return {(name, i * p.shape[1] + j) for i in r for j in c}


def test_correlated_rows_columns_heads_and_matrices(llama):
    model = copy.deepcopy(llama)
    params = dict(model.named_parameters())
    q, k, o = (f"model.layers.0.self_attn.{x}_proj.weight" for x in "qko")
    down = "model.layers.1.mlp.down_proj.weight"
    sel = _sel([(q, 2, 5, 16), (q, 9, 1, 16), (k, 3, 0, 16), (o, 4, 12, 16), (down, 0, 7, 24)])
    snap = _snapshot(params)

    def run(p):
        with perturbed(model, sel, "correlated", p) as applied:
            got = _changed(params, snap)
            assert got == _touched(applied)
        assert not _changed(params, snap)
        return got

    assert run(CorrelatedParams("row", "sign_flip")) == (_cells(params, q, rows=[2, 9]) | _cells(params, k, rows=[3])
                                                        | _cells(params, o, rows=[4]) | _cells(params, down, rows=[0]))
    assert run(CorrelatedParams("col", "zero")) == (_cells(params, q, cols=[5, 1]) | _cells(params, k, cols=[0])
                                                    | _cells(params, o, cols=[12]) | _cells(params, down, cols=[7]))
    # head_dim 8: q rows 2 and 9 lie in heads 0 and 1; the single kv head of k is rows 0..7; o column 12 → head 1
    heads = run(CorrelatedParams("head", "sign_flip", others="skip"))
    assert heads == (_cells(params, q, rows=range(16)) | _cells(params, k, rows=range(8))
                     | _cells(params, o, cols=range(8, 16)))
    with pytest.raises(ValueError, match="no attention heads"):
        apply(model, sel, "correlated", CorrelatedParams("head"))
    assert not _changed(params, snap)
    assert run(CorrelatedParams("matrix", "sign_flip")) == (_cells(params, q) | _cells(params, k) | _cells(params, o)
                                                            | _cells(params, down))
    # without a model, head needs head_dim given
    with pytest.raises(ValueError, match="head_dim"):
        apply(params, sel[sel["tensor"] == q], "correlated", CorrelatedParams("head"))
    with perturbed(params, sel[sel["tensor"] == q].iloc[:1], "correlated", CorrelatedParams("head", head_dim=4)):
        assert _changed(params, snap) == _cells(params, q, rows=range(0, 4))


def test_correlated_on_expert_slices_and_conv1d():
    packed = torch.nn.Parameter(torch.randn(3, 6, 5))
    sel = pd.DataFrame({"tensor": "m.layers.0.mlp.experts.down_proj", "expert": pd.array([1], dtype="Int64"),
                        "component": "mlp_down", "row": [2], "col": [4], "flat_index": [30 + 2 * 5 + 4]})
    params = {"m.layers.0.mlp.experts.down_proj": packed}
    snap = _snapshot(params)
    with perturbed(params, sel, "correlated", CorrelatedParams("row", "sign_flip")):
        assert _changed(params, snap) == {("m.layers.0.mlp.experts.down_proj", 30 + 10 + j) for j in range(5)}
    with perturbed(params, sel, "correlated", CorrelatedParams("matrix", "zero")):
        assert _changed(params, snap) == {("m.layers.0.mlp.experts.down_proj", 30 + j) for j in range(30)}
    # GPT-2's attention output is a Conv1D stored (in, out): its heads are rows
    torch.manual_seed(0)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    gparams = dict(gpt.named_parameters())
    name = "transformer.h.0.attn.c_proj.weight"
    gsnap = _snapshot(gparams)
    with perturbed(gpt, _sel([(name, 11, 3, 16)]), "correlated", CorrelatedParams("head", "sign_flip")):
        assert _changed(gparams, gsnap) == _cells(gparams, name, rows=range(8, 16))
    with pytest.raises(ValueError, match="fused"):
        apply(gpt, _sel([("transformer.h.0.attn.c_attn.weight", 0, 0, 48)]), "correlated", CorrelatedParams("head"))
