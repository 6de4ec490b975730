"""Super weight ↔ massive activation: a planted super weight makes its residual dimension massive in every later
layer, zeroing it removes that, and the model comes back bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from esa.engine.interpret.forward import forward_pass
from esa.engine.interpret.massive import WeightRef, layer_activity, massive_activations, massive_drop, zeroed
from esa.engine.scoring.superweight import SuperweightCandidate
from interpret_tiny import raw, same_bits, tiny

DOWN = "model.layers.1.mlp.down_proj.weight"
ROW, COL = 3, 5
FIRST = 1  # the token that opens a sequence in sink_planted


def planted() -> torch.nn.Module:
    """Layer 1's MLP channel COL fires hard on every token (a constant embedding dimension feeds it) and only
    down_proj[ROW, COL] carries it onto the residual stream. Three layers: one before it, one after."""
    model = tiny(layers=3)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        mlp = model.model.layers[1].mlp
        for proj in (mlp.gate_proj, mlp.up_proj):
            proj.weight[COL].zero_()
            proj.weight[COL, 0] = 5.0
        mlp.down_proj.weight[:, COL] = 0.0
        mlp.down_proj.weight[ROW, COL] = 50.0
    return model


IDS = torch.tensor([7, 3, 19, 42, 5, 11, 60, 2, 33, 8])


def test_the_planted_dimension_is_massive_after_its_layer_and_zeroing_removes_it():
    model = planted()
    before = raw(model)
    frame = massive_activations(model, IDS, WeightRef(DOWN, ROW, COL))
    assert same_bits(before, raw(model))
    assert len(frame) == 6 and set(frame["condition"]) == {"baseline", "zeroed"}
    base = frame[frame["condition"] == "baseline"].set_index("layer")
    gone = frame[frame["condition"] == "zeroed"].set_index("layer")
    assert base.loc[0, "ratio"] < 1  # before the super weight: nothing massive, and nothing changed by zeroing it
    assert base.loc[0].drop("condition").equals(gone.loc[0].drop("condition"))
    for layer in (1, 2):  # the residual connection carries it through layer 2
        assert base.loc[layer, "dim"] == ROW
        assert base.loc[layer, "ratio"] > 100 and base.loc[layer, "ratio_to_median"] > 1000
        assert gone.loc[layer, "ratio"] < 1  # another dimension is now the largest
        assert base.loc[layer, "ratio"] / gone.loc[layer, "ratio"] > 1000
    drop = massive_drop(frame).set_index("layer")
    assert drop.loc[1, "ratio_fall"] == pytest.approx(base.loc[1, "ratio"] / gone.loc[1, "ratio"])
    assert drop.loc[0, "ratio_fall"] == 1.0
    assert frame["param_name"].eq(DOWN).all() and frame["row"].eq(ROW).all() and frame["col"].eq(COL).all()


def test_the_reported_values_are_those_of_the_residual_stream():
    model = planted()
    frame = massive_activations(model, IDS, WeightRef(DOWN, ROW, COL))
    residual = forward_pass(model, IDS, attentions=False).residuals[2][0]  # [T, D] after layer 2
    row = frame[(frame["condition"] == "baseline") & (frame["layer"] == 2)].iloc[0]
    column = residual[:, ROW]
    token = int(column.abs().argmax())
    others = torch.cat([residual[:, :ROW], residual[:, ROW + 1:]], 1).abs()
    assert row["token"] == token
    assert row["value"] == pytest.approx(float(column[token]), rel=1e-6)
    assert row["other_max_abs"] == pytest.approx(float(others.max()), rel=1e-6)
    assert row["ratio"] == pytest.approx(abs(float(column[token])) / float(others.max()), rel=1e-6)


def test_layer_activity_on_a_hand_made_stream():
    h = torch.tensor([[1.0, -2.0, 0.5], [0.25, -8.0, 4.0]])
    a = layer_activity("baseline", 0, h, dim=1, sink=0.5)
    assert (a.token, a.value, a.abs_value, a.other_max_abs, a.ratio) == (1, -8.0, 8.0, 4.0, 2.0)
    assert a.median_abs == 1.0 and a.ratio_to_median == 8.0  # torch's median of 6 values takes the lower middle


def test_the_sink_share_is_the_mean_attention_on_the_first_token():
    model = planted()
    frame = massive_activations(model, IDS, WeightRef(DOWN, ROW, COL))
    probs = forward_pass(model, IDS).attentions
    for layer, p in enumerate(probs):
        got = frame[(frame["condition"] == "baseline") & (frame["layer"] == layer)]["sink_share"].item()
        assert got == pytest.approx(float(p[:, :, 1:, 0].mean()), rel=1e-6)
    with zeroed(model, DOWN, ROW, COL):
        probs = forward_pass(model, IDS).attentions
    for layer, p in enumerate(probs):
        got = frame[(frame["condition"] == "zeroed") & (frame["layer"] == layer)]["sink_share"].item()
        assert got == pytest.approx(float(p[:, :, 1:, 0].mean()), rel=1e-6)


def test_zeroed_zeroes_exactly_one_weight_and_restores_it_on_an_error():
    model = planted()
    before = raw(model)
    with pytest.raises(RuntimeError, match="inside"):
        with zeroed(model, DOWN, ROW, COL) as applied:
            now = raw(model)
            assert applied.n_touched == applied.n_changed == 1
            for name in before:
                changed = torch.nonzero(before[name] != now[name]).reshape(-1).tolist()
                assert changed == ([ROW * 32 + COL] if name == DOWN else []), name
            assert float(model.get_parameter(DOWN).detach()[ROW, COL]) == 0.0
            raise RuntimeError("inside")
    assert same_bits(before, raw(model))
    assert model.config._attn_implementation == "sdpa"


def test_a_detector_candidate_is_accepted_and_its_output_channel_is_the_dimension():
    cand = SuperweightCandidate(layer=1, module="model.layers.1.mlp.down_proj", param_name=DOWN, row=ROW, col=COL,
                                weight_value=50.0, input_value=1.0, output_value=1.0, input_ratio=100.0,
                                output_ratio=100.0, contribution=1.0, input_channel=COL, output_channel=ROW)
    assert WeightRef.of(cand) == WeightRef(DOWN, ROW, COL, None, ROW)
    frame = massive_activations(planted(), IDS, cand)
    assert frame["dim"].eq(ROW).all()
    assert math.isfinite(frame["ratio"].max())


def test_a_weight_outside_its_matrix_is_refused():
    with pytest.raises(IndexError):
        with zeroed(tiny(), DOWN, 16, 0):
            pass
    with pytest.raises(KeyError):
        with zeroed(tiny(), "model.layers.9.mlp.down_proj.weight", 0, 0):
            pass


def sink_planted() -> torch.nn.Module:
    """The super-weight → attention-sink mechanism: only the first token (id FIRST) feeds layer 1's MLP channel
    COL, so residual dimension ROW is massive at token 0 alone; layer 2's keys read ROW and its queries read the
    constant dimension 0, in the head dimension RoPE barely rotates (3 of 8), so every query attends to token 0."""
    model = tiny(layers=3)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 1.0
        emb[:, 1] = 0.0
        emb[FIRST, 1] = 1.0
        mlp = model.model.layers[1].mlp
        for proj in (mlp.gate_proj, mlp.up_proj):
            proj.weight[COL].zero_()
            proj.weight[COL, 1] = 5.0
        mlp.down_proj.weight[:, COL] = 0.0
        mlp.down_proj.weight[ROW, COL] = 50.0
        attn = model.model.layers[2].self_attn
        for head in range(2):
            attn.q_proj.weight[head * 8 + 3, 0] = 3.0
            attn.k_proj.weight[head * 8 + 3, ROW] = 3.0
    return model


def test_a_super_weight_that_makes_the_sink_takes_it_away_when_zeroed():
    model = sink_planted()
    before = raw(model)
    frame = massive_activations(model, torch.cat([torch.tensor([FIRST]), IDS]), WeightRef(DOWN, ROW, COL))
    assert same_bits(before, raw(model))
    drop = massive_drop(frame).set_index("layer")
    base = frame[frame["condition"] == "baseline"].set_index("layer")
    assert (base.loc[[1, 2], "token"] == 0).all()  # massive at the first token only
    assert drop.loc[2, "sink_share_baseline"] > 0.95 and drop.loc[2, "sink_share_zeroed"] < 0.5
    # Layers 0 and 1 attend before anything reads ROW: their sink shares do not move.
    assert (drop.loc[[0, 1], "sink_share_baseline"] == drop.loc[[0, 1], "sink_share_zeroed"]).all()
    assert (drop.loc[[0, 1], "sink_share_baseline"] < 0.3).all()
