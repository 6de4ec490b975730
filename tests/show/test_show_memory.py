"""`esa show` prints each score run's memory estimate when the model's config is on this machine (registry
models, a local path, the packaged model's converted folder), and says it is unknown until loaded otherwise."""

from __future__ import annotations

import shutil
import textwrap

from click.testing import CliRunner
from transformers import LlamaConfig

from esa.cli import main
from esa.engine.models.shape import config_shape
from esa.engine.scoring.memory import estimate_memory

SPEC = textwrap.dedent("""\
    phase: 2
    title: memory
    hypotheses: [{id: H1, statement: s}]
    defaults: {data: stdlib-tiny, seeds: [1], microbatch: 2}
    runs:
      - {id: tiny, kind: score, model: ref-tiny, metrics: [grad_x_weight, act_mag], context: 64}
      - {id: local, kind: score, model: ./checkpoints/tiny-llama, metrics: [grad_squared], context: 64,
         accum_dtype: bfloat16, device_map: auto, max_memory: {cpu: 1GiB}}
      - {id: hub, kind: score, model: nobody/not-cached-anywhere, metrics: [grad_x_weight]}
      - {id: base, kind: eval, model: ref-tiny}
    """)


def test_show_prints_the_estimate_or_says_it_is_unknown(tmp_path, repo_root, monkeypatch):
    for folder in ("stages", "esa"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs/memory.yaml").write_text(SPEC)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2)
    config.save_pretrained(tmp_path / "checkpoints/tiny-llama")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(main, ["show", "specs/memory.yaml"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    local = estimate_memory(config_shape(config), ["grad_squared"], model_dtype="float32", accum_dtype="bfloat16",
                            microbatch=2, context=64, save_scores=True)
    assert (f"accum_dtype bfloat16 · device_map auto · max_memory {{'cpu': '1GiB'}} · memory per seed {local.line()} "
            "(over all devices of the device_map together)") in text
    assert "memory per seed unknown until loaded (no local config.json for nobody/not-cached-anywhere)" in text
    tiny = next(line for line in result.stdout.splitlines() if line.startswith("  tiny "))
    block = text.split("tiny score")[1].split(" local ")[0]
    assert tiny and "memory per seed " in block and "(grad_sum at float32, act_sq at float32)" in block
    assert text.count("memory per seed") == 3  # score runs only; the eval run has no such line
