"""Whole-model pruning masks: every scored matrix, exact counts, saved-score files, seeded random masks."""

import math

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.models.targets import scored_parameters
from esa.engine.pruning.masks import METHODS, SAVED_METRIC, prune_mask
from esa.engine.pruning.model_masks import load_saved_scores, model_masks


@pytest.fixture()
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


def random_scores_file(model, folder, metric, seed=1):
    """A score run's folder with one parameter-shaped random score per scored parameter."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {t.name: torch.rand(t.parameter.shape, generator=gen) for t in scored_parameters(model)}
    (folder / "scores").mkdir(exist_ok=True)
    save_file(tensors, str(folder / "scores" / f"{metric}.safetensors"))
    return tensors


@pytest.mark.parametrize("group", ["row", "matrix"])
@pytest.mark.parametrize("method", METHODS)
def test_every_scored_matrix_gets_exact_counts(llama, tmp_path, method, group):
    if SAVED_METRIC[method]:
        random_scores_file(llama, tmp_path, SAVED_METRIC[method])
    masks = model_masks(llama, method, 0.3, group, load_saved_scores(tmp_path, method))
    targets = scored_parameters(llama)
    assert list(masks) == [t.key for t in targets]
    for target in targets:
        mask = masks[target.key]
        assert mask.dtype == torch.bool and tuple(mask.shape) == target.shape
        rows, cols = target.shape
        if group == "row":
            assert mask.sum(dim=1).tolist() == [math.floor(0.3 * cols)] * rows
        else:
            assert int(mask.sum()) == math.floor(0.3 * rows * cols)


def test_magnitude_masks_are_prune_mask_of_abs_weight(llama):
    masks = model_masks(llama, "magnitude", 0.5, "row")
    for target in scored_parameters(llama):
        expected = prune_mask(target.parameter.detach().abs(), 0.5, "row")
        assert torch.equal(masks[target.key], expected)


def test_saved_score_masks_read_the_methods_file(llama, tmp_path):
    wanted = random_scores_file(llama, tmp_path, "act_mag", seed=1)
    random_scores_file(llama, tmp_path, "obd", seed=2)  # another metric's file must not be read
    masks = model_masks(llama, "wanda", 0.5, "matrix", load_saved_scores(tmp_path, "wanda"))
    for target in scored_parameters(llama):
        assert torch.equal(masks[target.key], prune_mask(wanted[target.name], 0.5, "matrix"))


def test_methods_without_a_file_load_nothing(tmp_path):
    assert load_saved_scores(tmp_path, "magnitude") is None
    assert load_saved_scores(tmp_path, "random") is None


def test_a_missing_score_file_is_a_one_line_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_saved_scores(tmp_path, "obd")
    message = str(err.value)
    assert str(tmp_path / "scores" / "obd.safetensors") in message and "\n" not in message


def test_saved_scores_are_required_for_score_methods(llama):
    with pytest.raises(ValueError, match="grad_squared"):
        model_masks(llama, "grad_squared", 0.5, "row")


def test_random_masks_depend_on_seed_not_order(llama):
    first = model_masks(llama, "random", 0.5, "row", seed=7)
    again = model_masks(llama, "random", 0.5, "row", seed=7)
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = model_masks(llama, "random", 0.5, "row", seed=8)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    # Each matrix's draws depend on its key only: masking a reordered subset gives the same masks.
    keys = [t.key for t in scored_parameters(llama)][::-1][:3]
    holder = torch.nn.Module()
    for key in keys:
        module = holder
        *path, leaf = key.split(".")
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, llama.get_parameter(key))
    reordered = model_masks(holder, "random", 0.5, "row", seed=7)
    assert list(reordered) == keys
    assert all(torch.equal(reordered[k], first[k]) for k in keys)


def test_protected_positions_are_kept(llama):
    key = scored_parameters(llama)[0].key
    plain = model_masks(llama, "magnitude", 0.5, "row")
    row, col = plain[key].nonzero()[0].tolist()
    kept = model_masks(llama, "magnitude", 0.5, "row", protected={key: [(row, col)]})
    assert not kept[key][row, col]
    assert torch.equal(kept[key].sum(dim=1), plain[key].sum(dim=1))
