"""Cloze probes: single-token filtering against a stub tokenizer, scoring against unbatched forward passes, and
ablation of a planted knowledge path (top-k breaks it, a matched random set does not)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from esa.engine.interpret.ablate import complete
from esa.engine.interpret.cloze import Probe, ProbeSet, prepare_probes, probe_ablation, probe_summary, score_probes
from interpret_tiny import raw, same_bits, tiny


class StubTokenizer:
    """Greedy longest match over a fixed vocabulary; ``bos`` is prepended with special tokens."""

    def __init__(self, vocab: list[str], bos: int | None = None):
        self.ids = {piece: i for i, piece in enumerate(vocab)}
        self.bos = bos

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        out = [self.bos] if add_special_tokens and self.bos is not None else []
        while text:
            piece = max((p for p in self.ids if text.startswith(p)), key=len)
            out.append(self.ids[piece])
            text = text[len(piece):]
        return out


VOCAB = ["<s>", "\n", " ", "\n   ", " return", "re", "turn", "x", "=", " x", "if", " is", " None", " No", "ne",
         "a", "b", "ab", "for", " in", " i", "def", "f"]


def test_single_token_answers_are_kept_and_the_rest_dropped_with_their_reason():
    tok = StubTokenizer(VOCAB, bos=0)
    probes = {"kw": [("if x is", " None"),  # one token
                     ("for", " in"),  # one token
                     ("x =", " ab"),  # ' ab' is ' ' + 'ab': two tokens
                     ("a", "b"),  # 'ab' merges across the boundary: the prompt's tokens change
                     ("def f\n    ", "return")],  # the last space joins the answer: '\n   ' + ' return'
              "other": [("if", " i")]}
    got = prepare_probes(tok, probes=probes)
    kept = {(p.category, p.item): p for p in got.probes}
    assert sorted(kept) == [("kw", 0), ("kw", 1), ("kw", 4), ("other", 0)]
    assert kept[("kw", 0)].context_ids == (0, 10, 9, 11) and kept[("kw", 0)].answer_id == 12
    moved = kept[("kw", 4)]
    assert (moved.prompt, moved.answer) == ("def f\n   ", " return") and moved.answer_id == 4
    assert moved.context_ids[-1] == 3
    assert [(d.item, d.n_answer_tokens) for d in got.dropped] == [(2, 2), (3, 0)]
    summary = got.summary().set_index("category")
    assert summary.loc["kw"].tolist() == [5, 3, 2] and summary.loc["other"].tolist() == [1, 1, 0]
    only = prepare_probes(tok, ["other"], probes=probes)
    assert [p.category for p in only.probes] == ["other"] and not only.dropped


ANSWER, ROW, COL = 9, 3, 5
DOWN = "model.layers.0.mlp.down_proj.weight"
Q = "model.layers.1.self_attn.q_proj.weight"


def knowing_model():
    """Residual dimension ROW is large on every token through one weight, down_proj[ROW, COL], and lm_head reads
    only that dimension into token ANSWER: the model 'knows' ANSWER through that weight."""
    model = tiny(vocab=32)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        mlp = model.model.layers[0].mlp
        for proj in (mlp.gate_proj, mlp.up_proj):
            proj.weight[COL].zero_()
            proj.weight[COL, 0] = 5.0
        mlp.down_proj.weight[:, COL] = 0.0
        mlp.down_proj.weight[ROW, COL] = 50.0
        model.lm_head.weight[ANSWER].zero_()
        model.lm_head.weight[ANSWER, ROW] = 1.0
    return model


def probe_set() -> ProbeSet:
    contexts = [(1, 2, 3), (4,), (5, 6, 7, 8, 10, 11), (12, 13), (14, 15, 16)]
    probes = [Probe("known", i, "", "", c, ANSWER) for i, c in enumerate(contexts)]
    probes += [Probe("unknown", i, "", "", c, 20 + i) for i, c in enumerate(contexts[:3])]
    return ProbeSet(probes, [])


def test_scores_match_unbatched_forward_passes():
    model = knowing_model()
    probes = probe_set()
    frame = score_probes(model, probes, batch_size=3, pad_id=31)
    assert len(frame) == 8
    for p, row in zip(probes.probes, frame.itertuples()):
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([p.context_ids])).logits[0, -1].double(), -1)
        assert row.logprob == pytest.approx(float(logp[p.answer_id]), abs=1e-5)
        assert row.predicted_id == int(logp.argmax())
        assert row.rank == int((logp > logp[p.answer_id]).sum())
        assert row.correct == (row.rank == 0)
    summary = probe_summary(frame).set_index("category")
    assert summary.loc["known", "accuracy"] == 1.0 and summary.loc["unknown", "accuracy"] == 0.0
    assert summary.loc["known", "n_items"] == 5
    assert summary.loc["known", "mean_logprob"] == pytest.approx(frame[frame.category == "known"].logprob.mean())


def table(model) -> pd.DataFrame:
    rows = [(DOWN, ROW, COL, 0), (DOWN, 0, 0, 1), (Q, 1, 2, 0), (Q, 3, 4, 1)]
    return complete(pd.DataFrame(rows, columns=["tensor", "row", "col", "rank"]), model)


def test_zeroing_the_top_weight_breaks_the_knowledge_and_matched_random_sets_do_not():
    model = knowing_model()
    before = raw(model)
    frame = probe_ablation(model, probe_set(), table(model), 1, n_random=4, seed=7, batch_size=4)
    assert same_bits(before, raw(model))
    assert len(frame) == (1 + 1 + 4) * 8
    assert frame.groupby(["condition", "draw"]).size().to_dict() == {
        ("baseline", 0): 8, ("random", 0): 8, ("random", 1): 8, ("random", 2): 8, ("random", 3): 8, ("topk", 0): 8}
    assert set(frame[frame.condition != "baseline"]["n_zeroed"]) == {2}
    acc = probe_summary(frame[frame.category == "known"], ["condition", "draw"]).set_index(["condition", "draw"])
    assert acc.loc[("baseline", 0), "accuracy"] == 1.0
    assert acc.loc[("topk", 0), "accuracy"] <= 0.2
    assert (acc.loc["random", "accuracy"] == 1.0).all()
    base = frame[frame.condition == "baseline"].set_index(["category", "item"])["logprob"]
    top = frame[frame.condition == "topk"].set_index(["category", "item"])["logprob"]
    assert (top.loc["known"] < base.loc["known"] - 1.0).all()


def test_an_empty_ablation_is_refused():
    model = knowing_model()
    with pytest.raises(ValueError, match="no weight"):
        probe_ablation(model, probe_set(), table(model), {"attn_k": 1})
