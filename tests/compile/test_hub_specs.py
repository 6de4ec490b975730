"""The hub-model specs (specs/hub/) load and compile offline: hub ids go to the stages as they are, on cuda in bf16."""

import json
import subprocess
import sys

import pytest
import yaml

from golden_files import check_golden

from esa.compile.compiler import compile_specs
from esa.spec import load_spec

PYTHIA = ["EleutherAI/pythia-70m", "EleutherAI/pythia-160m", "EleutherAI/pythia-410m", "EleutherAI/pythia-1b",
          "EleutherAI/pythia-1.4b"]
LLAMA = "meta-llama/Llama-3.1-8B"
# spec file, its name, the hub ids its runs load, the stage kind they compile to
HUB_SPECS = [
    ("specs/hub/pythia.yaml", "pythia-phase2", PYTHIA, "score"),
    ("specs/hub/llama31-8b.yaml", "llama31-8b-phase1", [LLAMA], "eval"),
]


@pytest.mark.parametrize(("source", "name", "models", "kind"), HUB_SPECS)
def test_hub_spec_compiles_to_cuda_bf16_stages_of_its_hub_models(repo_root, source, name, models, kind):
    spec = load_spec(repo_root / source)
    assert spec.name == name
    assert (repo_root / source).read_text().startswith("# yaml-language-server: $schema=../schema.json\n# ")
    result = compile_specs([source], repo_root)
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    params = yaml.safe_load(result.params_yaml)[name]
    runs = [stage for stage in stages if stage.startswith(f"{kind}.")]
    assert len(runs) == sum(len(run.seeds) for run in spec.runs)
    for stage in runs:
        run_id = stage.split("/")[1]
        assert stages[stage]["cmd"].startswith("python stages/") and f"--key {name}.{run_id} " in stages[stage]["cmd"]
        assert f"--spec {source} " in stages[stage]["cmd"]
        assert stages[stage]["params"] == [f"{name}.{run_id}"]
        # A hub id is loaded by from_pretrained in the stage: no conversion or training stage feeds it.
        assert not any(dep.startswith("models/") for dep in stages[stage]["deps"])
    assert sorted({run["model"] for run in params.values()}) == sorted(models)
    assert all(run["device"] == "cuda" and run["dtype"] == "bfloat16" for run in params.values())
    assert f"grade.{name}" in stages
    assert stages[f"grade.{name}"]["metrics"] == [{f"results/{name}/grades.json": {"cache": False}}]


def test_pythia_scores_every_rung_with_the_three_metrics_in_both_modes(repo_root):
    params = yaml.safe_load(compile_specs(["specs/hub/pythia.yaml"], repo_root).params_yaml)["pythia-phase2"]
    assert sorted(params) == ["score-pythia-160m", "score-pythia-1_4b", "score-pythia-1b", "score-pythia-410m",
                              "score-pythia-70m"]
    for run in params.values():
        assert run["metrics"] == ["grad_x_weight", "act_mag", "superweight"]
        assert run["modes"] == ["per_layer", "global"]
        assert run["seed_plan"] == [1337, 123, 999]  # seeds draw disjoint calibration documents


@pytest.mark.parametrize(("source", "name"), [(source, name) for source, name, _, _ in HUB_SPECS])
def test_hub_spec_golden(repo_root, source, name):
    result = compile_specs([source], repo_root)
    check_golden(f"{name}.dvc.yaml", result.dvc_yaml)
    check_golden(f"{name}.params.yaml", result.params_yaml)


WIKITEXT2 = "specs/hub/wikitext2.yaml"


def test_wikitext2_spec_evaluates_on_its_own_hf_corpus(repo_root):
    assert (repo_root / WIKITEXT2).read_text().startswith("# yaml-language-server: $schema=../schema.json\n# ")
    result = compile_specs([WIKITEXT2], repo_root)
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    params = yaml.safe_load(result.params_yaml)
    corpus = params["corpora"]["wikitext2"]
    assert (corpus["kind"], corpus["dataset"], corpus["config"]) == ("hf_dataset", "Salesforce/wikitext",
                                                                    "wikitext-2-raw-v1")
    assert corpus["group"] == "wikitext_articles" and corpus["splits"] == ["train", "validation", "test"]
    assert stages["corpus.wikitext2"]["cmd"] == "python stages/text_corpus.py --key corpora.wikitext2 --out data/wikitext2"
    assert [name for name in stages if name.startswith("corpus.")] == ["corpus.wikitext2"]  # no stdlib corpus
    runs = params["wikitext2-phase1"]
    assert {run["data"] for run in runs.values()} == {"data/wikitext2"}
    assert {run["model"] for run in runs.values()} == {"EleutherAI/pythia-160m"}
    check_golden("wikitext2-phase1.dvc.yaml", result.dvc_yaml)
    check_golden("wikitext2-phase1.params.yaml", result.params_yaml)


def test_hub_specs_compile_without_network_or_model_loading(repo_root):
    # A fresh process: no other test has imported transformers, and a socket that connects is an error.
    script = (
        "import json, socket, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    raise OSError('network access while compiling')\n"
        "socket.socket.connect = refuse\n"
        "from pathlib import Path\n"
        "from esa.compile.compiler import compile_specs\n"
        f"result = compile_specs({[source for source, *_ in HUB_SPECS] + [WIKITEXT2]!r}, Path('.'))\n"
        "print(json.dumps({'stages': len(result.stages), 'transformers': 'transformers' in sys.modules,\n"
        "                  'datasets': 'datasets' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["stages"] > 0 and report["transformers"] is False and report["datasets"] is False
