"""Sensitivity metrics against plain autograd references on a tiny random Llama (float64)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.scoring.hutchinson import hutchinson_sums, probe_seed, rademacher
from esa.engine.scoring.metrics import METRICS, get_metric
from esa.engine.data.batches import make_batches
from esa.engine.scoring.gradient_pass import bare_fwd_bwd
from esa.engine.scoring.passes import score_model

GRADIENT_METRICS = ["grad_x_weight", "grad_squared", "obd", "act_mag"]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: two OpenMP threads only add spin-wait overhead (badly so when other processes load the cores).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_llama(seed: int = 0, dtype=torch.float64, tied: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg).to(dtype).eval()


def windows(seed: int = 1, lengths=(9, 17, 30, 12)) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (n,), generator=gen) for n in lengths]


def seq_loss(model, ids: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids[None]).logits[0, :-1]
    return F.cross_entropy(logits, ids[1:])


def reference_gradients(model, params, wins):
    """Plain loop: torch.autograd.grad per sequence; token-weighted mean gradient and Σ per-sequence grad²."""
    n_total = sum(w.numel() - 1 for w in wins)
    g_mean = [torch.zeros_like(p) for _, p in params]
    g_sq = [torch.zeros_like(p) for _, p in params]
    for ids in wins:
        grads = torch.autograd.grad(seq_loss(model, ids), [p for _, p in params])
        for i, g in enumerate(grads):
            g_mean[i] += g * (ids.numel() - 1) / n_total
            g_sq[i] += g * g
    return g_mean, [s / len(wins) for s in g_sq]


def test_gradient_metrics_match_per_sequence_autograd():
    model = tiny_llama()
    params = list(model.named_parameters())
    wins = windows()
    result = score_model(model, params, wins, GRADIENT_METRICS + ["magnitude"], accum_dtype=torch.float64,
                         score_dtype=torch.float64, progress=False)
    g_mean, fisher = reference_gradients(model, params, wins)
    assert result.meta.n_tokens == sum(w.numel() - 1 for w in wins)
    assert result.meta.n_sequences == result.meta.n_microbatches == len(wins)
    for i, (name, p) in enumerate(params):
        w = p.detach()
        torch.testing.assert_close(result.score("grad_x_weight", name), (w * g_mean[i]).abs(), rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(result.score("grad_squared", name), fisher[i], rtol=1e-9, atol=1e-16)
        torch.testing.assert_close(result.score("obd", name), 0.5 * fisher[i] * w * w, rtol=1e-9, atol=1e-18)
        torch.testing.assert_close(result.score("magnitude", name), w.abs())
    # Not the square of the summed gradient: the two differ wherever sequences disagree.
    name = "model.layers.0.mlp.down_proj.weight"
    index = [n for n, _ in params].index(name)
    assert not torch.allclose(result.score("grad_squared", name), g_mean[index] ** 2, rtol=0.1)


def test_tied_embedding_gets_the_gradient_of_both_uses():
    model = tiny_llama(tied=True)
    params = list(model.named_parameters())
    assert "lm_head.weight" not in dict(params)  # one parameter, two uses
    wins = windows()
    result = score_model(model, params, wins, ["grad_x_weight", "grad_squared", "act_mag"],
                         accum_dtype=torch.float64, score_dtype=torch.float64, progress=False)
    g_mean, fisher = reference_gradients(model, params, wins)
    name = "model.embed_tokens.weight"
    index = [n for n, _ in params].index(name)
    w = params[index][1].detach()
    torch.testing.assert_close(result.score("grad_x_weight", name), (w * g_mean[index]).abs(), rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(result.score("grad_squared", name), fisher[index], rtol=1e-9, atol=1e-16)
    assert "lm_head" in result.meta.notes["act_mag"][name]


def test_float32_accumulators_agree_with_float64():
    model = tiny_llama()
    params = list(model.named_parameters())
    wins = windows()
    fp64 = score_model(model, params, wins, ["grad_x_weight", "grad_squared"], accum_dtype=torch.float64,
                       score_dtype=torch.float64, progress=False)
    fp32 = score_model(model, params, wins, ["grad_x_weight", "grad_squared"], progress=False)
    for name, _ in params:
        for metric in ("grad_x_weight", "grad_squared"):
            assert fp32.score(metric, name).dtype == torch.float32
            ref = fp64.score(metric, name)
            assert (fp32.score(metric, name).double() - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_act_mag_equals_input_norm_times_weight():
    model = tiny_llama()
    params = [(n, p) for n, p in model.named_parameters()]
    wins = windows()
    result = score_model(model, params, wins, ["act_mag"], progress=False)
    assert result.meta.passes == ["activations"]  # act_mag alone needs no backward
    linears = {f"{n}.weight": m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    sums = {name: torch.zeros(m.in_features, dtype=torch.float64) for name, m in linears.items()}

    def capture(name):
        def hook(module, inputs, output):
            sums[name].add_((inputs[0].reshape(-1, inputs[0].shape[-1]) ** 2).sum(0))
        return hook

    handles = [m.register_forward_hook(capture(name)) for name, m in linears.items()]
    with torch.no_grad():
        for ids in wins:
            model(input_ids=ids[None])
    for handle in handles:
        handle.remove()
    for name, p in params:
        score = result.score("act_mag", name)
        if name in linears:
            expected = p.detach().abs() * sums[name].sqrt()[None, :]
            torch.testing.assert_close(score.double(), expected, rtol=1e-5, atol=1e-10)
        else:
            assert score is None and name in result.meta.notes["act_mag"]
    assert "lm_head.weight" in linears and result.score("act_mag", "lm_head.weight") is not None


def test_microbatches_with_padding_give_the_same_token_weighted_gradient():
    model = tiny_llama()
    params = list(model.named_parameters())
    wins = windows()
    one = score_model(model, params, wins, ["grad_x_weight", "act_mag", "grad_squared"],
                      accum_dtype=torch.float64, score_dtype=torch.float64, progress=False)
    three = score_model(model, params, wins, ["grad_x_weight", "act_mag", "grad_squared"], microbatch=3,
                        accum_dtype=torch.float64, score_dtype=torch.float64, progress=False)
    assert make_batches(wins, 3)[0].mask is not None  # unequal lengths: padding is present
    assert three.meta.n_microbatches == 2 and three.meta.n_tokens == one.meta.n_tokens
    assert "NOT per-sequence" in three.meta.estimators["grad_squared"]
    # Padded batches take other attention kernels, which compute some pieces in float32: agreement to ~1e-7
    # of the largest score, where a wrong token weighting or an unmasked pad would be off by far more.
    for name, _ in params:
        for metric in ("grad_x_weight", "act_mag"):
            ref = one.score(metric, name)
            if ref is not None:
                assert (three.score(metric, name) - ref).abs().max() <= 1e-6 * ref.abs().max()


def test_hutchinson_probe_is_exact_z_hz_on_the_model():
    """One probe through the scoring pass equals z ⊙ Hz from plain double backward, token-weighted over windows."""
    model = tiny_llama()
    names = ["model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight", "lm_head.weight"]
    lookup = dict(model.named_parameters())
    params = [(n, lookup[n]) for n in names]
    wins = windows(lengths=(9, 14))
    result = score_model(model, params, wins, ["hutchinson_diag"], probes=1, seed=7, hutchinson_mode="abs",
                         accum_dtype=torch.float64, score_dtype=torch.float64, progress=False)
    assert result.meta.hutchinson["attention"] == "eager"
    assert model.config._attn_implementation == "sdpa"  # restored
    z = [rademacher(p, probe_seed(7, 0, i)) for i, (_, p) in enumerate(params)]
    model.set_attn_implementation("eager")
    n_total = sum(w.numel() - 1 for w in wins)
    hz = [torch.zeros_like(p) for _, p in params]
    for ids in wins:  # Hz of the token-weighted mean loss, one window at a time
        grads = torch.autograd.grad(seq_loss(model, ids), [p for _, p in params], create_graph=True)
        parts = torch.autograd.grad(sum((g * zi).sum() for g, zi in zip(grads, z)), [p for _, p in params])
        hz = [h + part * (ids.numel() - 1) / n_total for h, part in zip(hz, parts)]
    for (name, p), zi, hzi in zip(params, z, hz):
        torch.testing.assert_close(result.score("hutchinson_diag", name), (zi * hzi).abs(), rtol=1e-8, atol=1e-14)
    obd = score_model(model, params, wins, ["hutchinson_diag"], probes=1, seed=7, hutchinson_mode="obd",
                      accum_dtype=torch.float64, score_dtype=torch.float64, progress=False)
    for (name, p), zi, hzi in zip(params, z, hz):
        torch.testing.assert_close(obd.score("hutchinson_diag", name), 0.5 * zi * hzi * p.detach() ** 2,
                                   rtol=1e-8, atol=1e-16)


def test_hutchinson_converges_to_the_exact_hessian_diagonal():
    torch.manual_seed(3)
    w1 = torch.nn.Parameter(torch.randn(6, 4, dtype=torch.float64) * 0.7)
    w2 = torch.nn.Parameter(torch.randn(3, 6, dtype=torch.float64) * 0.7)
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))

    def loss_of(a, b, rows=slice(None)):
        return F.cross_entropy(torch.tanh(x[rows] @ a.T) @ b.T, y[rows])

    flat = torch.cat([w1.detach().reshape(-1), w2.detach().reshape(-1)])
    hessian = torch.autograd.functional.hessian(lambda v: loss_of(v[:24].view(6, 4), v[24:].view(3, 6)), flat)
    exact = torch.diagonal(hessian)
    # Per entry the estimator's standard deviation is sqrt(sum_{j != i} H_ij^2 / probes).
    off_diagonal = (hessian ** 2).sum(1) - exact ** 2
    params = [("w1", w1), ("w2", w2)]

    def losses():  # two unequal halves weighted by their size: the Hessian of the full mean loss
        yield loss_of(w1, w2, slice(0, 8)), 8 / 20
        yield loss_of(w1, w2, slice(8, 20)), 12 / 20

    def estimate(probes: int) -> torch.Tensor:
        sums = hutchinson_sums(params, losses, probes=probes, seed=11, accum_dtype=torch.float64, progress=False)
        return torch.cat([sums["w1"].reshape(-1), sums["w2"].reshape(-1)]) / probes

    few, many = estimate(20), estimate(2000)
    err_few = (few - exact).norm() / exact.norm()
    err_many = (many - exact).norm() / exact.norm()
    assert err_many < 0.1
    assert err_many < err_few / 4  # 1/sqrt(probes): 10x expected
    assert ((many - exact).abs() / (off_diagonal / 2000).sqrt()).max() < 4.5
    assert w1.grad is None and w2.grad is None


def test_same_seed_gives_bit_identical_scores_and_other_seed_other_probes():
    model = tiny_llama(dtype=torch.float32)
    params = list(model.named_parameters())
    wins = windows()
    metrics = ["grad_x_weight", "grad_squared", "obd", "act_mag", "hutchinson_diag"]
    runs = [score_model(model, params, wins, metrics, seed=s, probes=2, progress=False) for s in (5, 5, 6)]
    for metric in metrics:
        for name, _ in params:
            a, b = runs[0].score(metric, name), runs[1].score(metric, name)
            assert (a is None and b is None) or torch.equal(a, b)
    changed = [not torch.equal(runs[0].score("hutchinson_diag", n), runs[2].score("hutchinson_diag", n))
               for n, _ in params]
    assert all(changed)
    # Regenerating z from its seed (the GPU default) gives the same probes as caching it.
    regen = score_model(model, params, wins, ["hutchinson_diag"], seed=5, probes=2, cache_z=False, progress=False)
    assert all(torch.equal(regen.score("hutchinson_diag", n), runs[0].score("hutchinson_diag", n)) for n, _ in params)


def test_scoring_restores_model_state_and_scores_only_the_given_parameters():
    model = tiny_llama()
    model.train()
    lookup = dict(model.named_parameters())
    frozen = "model.layers.0.mlp.up_proj.weight"
    lookup[frozen].requires_grad_(False)
    params = [("down", lookup["model.layers.1.mlp.down_proj.weight"])]
    result = score_model(model, params, windows(), ["grad_x_weight", "hutchinson_diag"], probes=1, lazy=True,
                         progress=False)
    assert model.training
    assert all(p.requires_grad == (n != frozen) for n, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    assert result.names == ["down"] and result.score("grad_x_weight", "down").shape == (16, 32)
    with pytest.raises(KeyError):
        result.score("obd", "down")


def test_registry_and_bare_loop():
    assert set(METRICS) == {"grad_x_weight", "grad_squared", "obd", "act_mag", "hutchinson_diag", "magnitude",
                            "superweight"}
    assert get_metric("obd").pass_kind == get_metric("grad_squared").pass_kind == "gradient"
    with pytest.raises(ValueError, match="unknown metric"):
        get_metric("fisher")
    model = tiny_llama()
    assert bare_fwd_bwd(model, windows()) == sum(w.numel() - 1 for w in windows())
    assert all(p.grad is None for p in model.parameters())


def test_gpu_benchmark_dry_run(capsys):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_phase2.py"
    spec = importlib.util.spec_from_file_location("gpu_phase2", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_phase2"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("gpu_phase2", None)
    assert module.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "gradient pass" in out and "bare fwd+bwd" in out and "hutchinson" in out
    assert "| stage work, 3 seeds (gradient pass + top-100 per layer and global) |" in out


def test_calibration_windows_predict_every_token_once_and_score_a_trained_model(ref_tiny, tiny_corpus):
    from esa.engine.data.corpus import load_split
    from esa.engine.models.loading import load_model
    from esa.engine.data.batches import calibration_windows
    from esa.engine.data.windows import tokenize_docs

    model, tokenizer = load_model(str(ref_tiny))
    docs = load_split(tiny_corpus, "calibration")[:5]
    wins = calibration_windows(tokenizer, docs, context=64, max_windows=0, seed=0)
    assert max(w.numel() for w in wins) == 64
    assert sum(w.numel() - 1 for w in wins) == sum(max(len(d.ids) - 1, 0) for d in tokenize_docs(tokenizer, docs))
    some = calibration_windows(tokenizer, docs, context=64, max_windows=8, seed=1)
    result = score_model(model, list(model.named_parameters()), some, GRADIENT_METRICS, progress=False)
    assert result.meta.n_sequences == 8 and result.meta.dtype == "float32"
    assert all(torch.isfinite(s).all() for s in result.scores("grad_x_weight").values())
