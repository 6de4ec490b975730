"""Single-weight ablation: measured damage, exact restoration, weight sampling, transfer table, the stage."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from scipy.stats import spearmanr
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.scoring.ablation import ablate, gather_scores, sample_weights, transfer_table

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
VOCAB = 64


def tiny_llama(seed: int = 0, init: float = 0.2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         initializer_range=init, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def random_windows(n: int = 5, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    # Unequal lengths, so batches are padded.
    return [torch.randint(0, VOCAB, (length,), generator=gen) for length in (12, 9, 12, 5, 12)[:n]]


def hand_nll(model, windows: list[torch.Tensor]) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for w in windows:
            logits = model(input_ids=w[None]).logits[0, :-1]
            total += float(F.cross_entropy(logits, w[1:], reduction="sum"))
            count += w.numel() - 1
    return total / count


def picks(model, names_and_indices) -> pd.DataFrame:
    return pd.DataFrame({"tensor": [n for n, _ in names_and_indices], "flat_index": [i for _, i in names_and_indices],
                         "sample": "top"})


def test_ablate_delta_matches_hand_computation_and_restores_bits():
    model = tiny_llama()
    windows = random_windows()
    chosen = [("model.layers.0.mlp.down_proj.weight", 7), ("model.layers.1.self_attn.q_proj.weight", 100),
              ("lm_head.weight", 3 * 16 + 5), ("model.embed_tokens.weight", windows[0][2].item() * 16 + 1)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = ablate(model, picks(model, chosen), windows, batch_size=2, progress=False)

    base = hand_nll(model, windows)
    assert out["base_nll"].iloc[0] == pytest.approx(base, rel=1e-6)
    assert out.attrs["n_tokens"] == sum(w.numel() - 1 for w in windows)
    for (name, index), row in zip(chosen, out.itertuples()):
        copy_ = copy.deepcopy(model)
        flat = copy_.get_parameter(name).data.view(-1)
        assert row.weight == flat[index].item()
        flat[index] = 0
        expected = hand_nll(copy_, windows) - base
        assert row.delta_nll == pytest.approx(expected, abs=2e-6)
    assert out["delta_nll"].abs().max() > 1e-3  # the check above compares real changes, not rounding
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value.view(torch.uint8), after[key].view(torch.uint8)), key


def test_weight_made_critical_has_the_largest_damage():
    model = tiny_llama(init=0.02)
    token, j = 7, 3
    with torch.no_grad():
        # Token 7's embedding is one large direction; one lm_head weight turns it into a confident prediction of 7.
        model.model.embed_tokens.weight[token] = 0
        model.model.embed_tokens.weight[token, j] = 100.0
        model.lm_head.weight[token, j] = 5.0
    windows = [torch.full((10,), token)] * 3
    critical = ("lm_head.weight", token * 16 + j)
    rng = np.random.default_rng(0)
    others = [(name, int(rng.integers(p.numel()))) for name, p in model.named_parameters()
              if p.dim() == 2 and "embed" not in name for _ in range(4)]
    out = ablate(model, picks(model, [*others, critical]), windows, batch_size=3, progress=False)
    assert out["base_nll"].iloc[0] < 0.1
    assert out["delta_nll"].idxmax() == len(others)
    assert out["delta_nll"].iloc[-1] > 2.0  # back to near-uniform over 64 tokens (ln 64 = 4.16)
    assert out["delta_nll"].iloc[:-1].abs().max() < 0.1


class DividesByWeight(torch.nn.Module):
    """Logits = embedding / w[0, 0]: zeroing that weight gives inf/NaN logits."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(VOCAB, VOCAB))
        self.w = torch.nn.Parameter(torch.ones(2, 2))

    def forward(self, input_ids, attention_mask=None, use_cache=None):
        return SimpleNamespace(logits=self.emb[input_ids] / self.w[0, 0])


def test_nonfinite_damage_is_recorded_not_raised():
    model = DividesByWeight()
    out = ablate(model, picks(model, [("w", 0), ("w", 1)]), random_windows(3), batch_size=2, progress=False)
    assert not np.isfinite(out["delta_nll"].iloc[0])
    assert out["delta_nll"].iloc[1] == 0.0 and out["weight"].tolist() == [1.0, 1.0]
    assert model.w.detach().eq(1).all()


def ranked(scores: dict[str, torch.Tensor]) -> list[tuple[str, int]]:
    """Every (tensor, flat index), highest score first, ties by tensor name then index."""
    flat = {(t, i): float(scores[t].reshape(-1)[i]) for t in scores for i in range(scores[t].numel())}
    return sorted(flat, key=lambda k: (-flat[k], k))


def test_sample_weights_takes_the_top_set_of_every_metric():
    gen = torch.Generator().manual_seed(0)
    a = {"b": torch.rand(40, 50, generator=gen), "a": torch.rand(30, 20, generator=gen)}
    a["a"][0, :3] = 5.0  # a three-way tie at the top: broken by (tensor name, flat index)
    a["b"][0, 0] = 5.0
    b = {"a": torch.rand(30, 20, generator=gen), "b": torch.rand(40, 50, generator=gen)}  # unrelated ranking
    b["b"][0, 0] = 9.0  # in both top sets
    first = sample_weights({"m1": a, "m2": b}, top=10, n_random=60, seed=3)
    assert not first.duplicated(["tensor", "flat_index"]).any()
    top = first[first["sample"] == "top"]
    keys = set(zip(top["tensor"], top["flat_index"]))
    assert keys == set(ranked(a)[:10]) | set(ranked(b)[:10]) and len(keys) == 19  # ("b", 0) is shared
    labels = dict(zip(zip(top["tensor"], top["flat_index"]), top["top_of"]))
    assert labels[("b", 0)] == "m1,m2" and labels[ranked(b)[1]] == "m2" and labels[("a", 1)] == "m1"
    # rank is rank_by's (default the first metric) global rank; rows are top first, each part by rank.
    position = {key: r for r, key in enumerate(ranked(a))}
    assert [position[k] for k in zip(first["tensor"], first["flat_index"])] == first["rank"].tolist()
    assert list(top["rank"][:4]) == [0, 1, 2, 3] and top["rank"].is_monotonic_increasing
    random = first[first["sample"] == "random"]
    assert len(random) == 60 and (random["stratum"] == 0).all() and (random["top_of"] == "").all()
    assert random["rank"].is_monotonic_increasing and not keys & set(zip(random["tensor"], random["flat_index"]))
    by_m2 = sample_weights({"m1": a, "m2": b}, top=10, n_random=60, seed=3, rank_by="m2")
    assert set(zip(by_m2["tensor"], by_m2["flat_index"])) == set(zip(first["tensor"], first["flat_index"]))
    pd.testing.assert_frame_equal(first, sample_weights({"m1": a, "m2": b}, top=10, n_random=60, seed=3))
    assert not first.equals(sample_weights({"m1": a, "m2": b}, top=10, n_random=60, seed=4))
    assert first.attrs["sampling"]["n_top"] == 19 and "union of the global top-10" in first.attrs["sampling"]["rule"]
    with pytest.raises(ValueError, match="only 2581 scored non-zero weights"):
        sample_weights({"m1": a, "m2": b}, top=10, n_random=3000, seed=0)


def test_random_draw_is_uniform_over_scored_nonzero_weights_whatever_the_metric():
    n = 1000
    score = {"w": torch.arange(n, 0, -1, dtype=torch.float64)}  # rank = flat index
    weights = {"w": torch.ones(n)}
    weights["w"][500:520] = 0.0  # zeroing these changes nothing: never worth an ablation
    score["w"][900:] = float("nan")  # unscored by the one metric: not a candidate
    counts = np.zeros(10)
    for seed in range(200):
        frame = sample_weights({"m": score}, top=5, n_random=40, seed=seed, weights=weights)
        drawn = frame.loc[frame["sample"] == "random", "flat_index"].to_numpy()
        assert len(drawn) == 40 and drawn.min() >= 5 and drawn.max() < 900
        assert not ((drawn >= 500) & (drawn < 520)).any()
        counts += np.histogram(drawn, bins=10, range=(0, 1000))[0]
    # 875 candidates: deciles 1-8 hold 100 each (the first 95, the sixth 80), the last none. A draw
    # stratified by rank (the old sample) put a tenth of the draws in each of ten log-spaced strata, mostly
    # in the first decile.
    expected = 8000 * np.array([95, 100, 100, 100, 100, 80, 100, 100, 100, 0]) / 875
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 1), (counts, expected)
    meta = frame.attrs["sampling"]
    assert (meta["n_scored"], meta["n_candidates"], meta["n_zero_excluded"]) == (900, 875, 20)


def test_gather_scores_reads_the_sampled_elements():
    scores = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.arange(4.0).reshape(2, 2) * 10}
    weights = pd.DataFrame({"tensor": ["b", "a", "c", "a"], "flat_index": [3, 5, 0, 1]})
    np.testing.assert_array_equal(gather_scores(scores, weights), [30.0, 5.0, np.nan, 1.0])


def test_transfer_table_rho_is_scipy_spearman():
    rng = np.random.default_rng(0)
    delta = rng.normal(size=80)
    frame = pd.DataFrame({"delta_nll": delta, "good": delta + rng.normal(scale=0.5, size=80),
                          "noise": rng.normal(size=80), "sample": ["top"] * 20 + ["random"] * 60})
    frame.loc[3, "noise"] = np.nan
    table = transfer_table(frame, ["good", "noise"], n_boot=300, seed=1).set_index("column")
    good = spearmanr(frame["good"], frame["delta_nll"]).statistic
    assert table.loc["good", "rho"] == pytest.approx(good, abs=1e-12)
    ok = frame["noise"].notna()
    assert table.loc["noise", "rho"] == pytest.approx(spearmanr(frame["noise"][ok], delta[ok]).statistic, abs=1e-12)
    assert table.loc["noise", "n"] == 79 and table.loc["good", "n"] == 80
    assert table.loc["good", "ci_low"] < good < table.loc["good", "ci_high"] and table.loc["good", "ci_low"] > 0.6
    top = spearmanr(frame["good"][:20], delta[:20]).statistic
    assert table.loc["good", "rho_top"] == pytest.approx(top, abs=1e-12) and table.loc["good", "n_top"] == 20
    assert table.loc["good", "rho_random"] == pytest.approx(spearmanr(frame["good"][20:], delta[20:]).statistic,
                                                            abs=1e-12)
    assert table.loc["good", "n_random"] == table.loc["noise", "n_random"] == 60 and table.loc["noise", "n_top"] == 19
    again = transfer_table(frame, ["good", "noise"], n_boot=300, seed=1).set_index("column")
    pd.testing.assert_frame_equal(table, again)
    absolute = transfer_table(frame, ["good"], absolute=True, n_boot=0).set_index("column")
    assert absolute.loc["good", "rho"] == pytest.approx(spearmanr(frame["good"], np.abs(delta)).statistic, abs=1e-12)
    assert np.isnan(absolute.loc["good", "ci_low"])  # no bootstrap asked for


# ----------------------------------------------------------------------------------------------------------------
# The stage program


@pytest.fixture()
def ablation_project(tmp_path, ref_tiny, tiny_corpus) -> Path:
    """A score run's folder (scores computed here with score_model) and params for the ablation stage."""
    from safetensors.torch import save_file

    from esa.engine.data.corpus import load_split
    from esa.engine.models.loading import load_model
    from esa.engine.data.batches import calibration_windows
    from esa.engine.scoring.passes import score_model
    from esa.engine.models.targets import scored_parameters

    model, tok = load_model(str(ref_tiny))
    windows = calibration_windows(tok, load_split(tiny_corpus, "calibration"), context=64, max_windows=6, seed=1)
    params = [(t.name, t.parameter) for t in scored_parameters(model)]
    result = score_model(model, params, windows, ["grad_x_weight", "obd", "magnitude"], seed=1, progress=False)
    (tmp_path / "scores" / "scores").mkdir(parents=True)
    for metric in ("grad_x_weight", "obd", "magnitude"):
        save_file({n: s.contiguous() for n, s in result.scores(metric).items()},
                  str(tmp_path / "scores" / "scores" / f"{metric}.safetensors"))
    run = {"model": str(ref_tiny), "data": str(tiny_corpus), "metrics": ["grad_x_weight", "obd", "magnitude"],
           "rank_by": "grad_x_weight", "top": 5, "n_random": 20, "eval_windows": 4, "context": 64, "batch_size": 4}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"phase2": {"ablation": run}}))
    return tmp_path


def _stage(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages/ablation.py"), "--key", "phase2.ablation", "--seed", "1",
                           "--scores", "scores", "--out", "out", *extra], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=120)


def test_ablation_stage_end_to_end(ablation_project):
    proc = _stage(ablation_project)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = ablation_project / "out"
    frame = pd.read_parquet(out / "ablation.parquet")
    table = pd.read_parquet(out / "transfer.parquet")
    summary = json.loads((out / "summary.json").read_text())
    # Every checked metric's top 5 (three metrics, overlapping sets) plus 20 drawn uniformly.
    from safetensors.torch import load_file

    sampled = set(zip(frame["tensor"], frame["flat_index"]))
    top_rows = frame[frame["sample"] == "top"]
    for metric in ("grad_x_weight", "obd", "magnitude"):
        scores = load_file(str(ablation_project / "scores" / "scores" / f"{metric}.safetensors"))
        # Each tensor's top 5 (with any ties at its cut) holds the global top 5; ranking those by hand is cheap.
        head = {(n, int(i)): float(t.reshape(-1)[i]) for n, t in scores.items()
                for i in torch.nonzero(t.reshape(-1) >= torch.topk(t.reshape(-1), 5).values[-1]).reshape(-1)}
        tops = set(sorted(head, key=lambda k: (-head[k], k))[:5])
        assert tops <= set(zip(top_rows["tensor"], top_rows["flat_index"]))
        assert top_rows["top_of"].str.contains(metric).sum() == 5
    n_top = int((frame["sample"] == "top").sum())
    assert 5 <= n_top <= 15 and len(frame) == n_top + 20 and len(sampled) == len(frame)
    assert (frame.loc[frame["sample"] == "random", "weight"] != 0).all()
    assert summary["weight_sampling"]["n_top"] == n_top and summary["weight_sampling"]["metrics"] == [
        "grad_x_weight", "obd", "magnitude"]
    assert summary["weight_sampling"]["rule"].startswith("union of the global top-5 of each checked metric")
    assert {"tensor", "layer", "component", "row", "col", "flat_index", "weight", "delta_nll",
            "score_grad_x_weight_calibration", "score_obd_evaluation"} <= set(frame.columns)
    assert "score_magnitude_evaluation" not in frame  # data-free: no evaluation-text score
    np.testing.assert_allclose(frame["score_magnitude_calibration"], frame["weight"].abs(), rtol=1e-6)
    assert set(zip(table["metric"], table["source"])) == {
        ("grad_x_weight", "calibration"), ("obd", "calibration"), ("magnitude", "calibration"),
        ("grad_x_weight", "evaluation"), ("obd", "evaluation")}
    row = table[(table["metric"] == "obd") & (table["source"] == "evaluation")].iloc[0]
    obd = frame["score_obd_evaluation"]
    assert row["target"] == "abs" and row["rho"] == row["rho_abs"]
    assert row["rho"] == pytest.approx(spearmanr(obd, frame["delta_nll"].abs()).statistic)
    assert row["rho_signed"] == pytest.approx(spearmanr(obd, frame["delta_nll"]).statistic)
    assert row["n"] == len(frame) and summary["rho"]["obd"]["evaluation"] == pytest.approx(row["rho"])
    random = frame["sample"] == "random"
    assert row["n_random"] == 20 and row["rho_random"] == pytest.approx(
        spearmanr(obd[random], frame["delta_nll"][random].abs()).statistic)
    assert summary["rho_random"]["obd"]["evaluation"] == pytest.approx(row["rho_random"])
    assert summary["n_weights"] == len(frame) and summary["n_eval_windows"] == 4 and summary["n_eval_tokens"] > 0
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("edit", [{"top": 0}, {"metrics": ["grad_x_weight", "act_mag"]}, {"eval_scores": "yes"},
                                  {"target": "square"}])
def test_ablation_stage_bad_params_exit_2(ablation_project, edit):
    params = yaml.safe_load((ablation_project / "params.yaml").read_text())
    params["phase2"]["ablation"].update(edit)
    (ablation_project / "mine.yaml").write_text(yaml.safe_dump(params))
    proc = _stage(ablation_project, "--params", "mine.yaml")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (ablation_project / "out").exists()
