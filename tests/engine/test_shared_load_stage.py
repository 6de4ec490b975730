"""The shared-load stage on ref-tiny: two perturb runs × two seeds on one load give the very conditions, summaries
and super weights their four separate stages give, each written where its own stage writes it."""

from __future__ import annotations

import json
import shlex
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from stage_runner import run_stage, tiny_project

REPO = Path(__file__).resolve().parents[2]
GROUP = "perturb.phase3/shared-ref-tiny-float32-cpu"
RUNS, SEEDS = ("flip", "noise"), (1, 2)
HEAD = "title: t\nhypotheses: [{id: H1, statement: s}]\n"
PHASE3 = HEAD + textwrap.dedent("""\
    phase: 3
    NAME
    defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2], protocol: smoke, SHARE
               scores: {spec: specs/phase2.yaml, run: sc, k: 3}, controls: [random_k, bottom_k]}
    runs:
      - {id: flip, kind: perturb, perturbation: scale, levels: [-1.0, 1.0]}
      - {id: noise, kind: perturb, perturbation: gauss_noise, scale: 0.05}
    """)
SPECS = {
    "specs/phase2.yaml": HEAD + textwrap.dedent("""\
        phase: 2
        defaults: {model: ref-tiny, data: stdlib-tiny}
        runs:
          - {id: sc, kind: score, metrics: [grad_x_weight], topk: 8, max_windows: 4, context: 64, seeds: [1, 2]}
        """),
    # The same runs twice: with one load for all, and (under another name) one stage per run and seed.
    "specs/phase3.yaml": PHASE3.replace("NAME\n", "").replace("SHARE", "share_load: true,"),
    "specs/phase3-single.yaml": PHASE3.replace("NAME", "name: phase3-single").replace("SHARE", ""),
}


class Project:
    def __init__(self, root: Path):
        from esa.compile.compiler import compile_specs

        self.root = root
        compiled = compile_specs(list(SPECS), root)
        compiled.write(root)
        self.stages: dict = yaml.safe_load(compiled.dvc_yaml)["stages"]
        self.done: set[str] = set()

    def run(self, stage: str) -> None:
        """The compiled command, upstream stages first (corpus and model are linked in, not built)."""
        if stage in self.done:
            return
        for dep in self.stages[stage].get("deps", []):
            producer = next((name for name, other in self.stages.items() if dep in other.get("outs", [])), None)
            if producer and not producer.startswith(("corpus.", "reference.")):
                self.run(producer)
        argv = shlex.split(self.stages[stage]["cmd"])
        proc = run_stage(self.root, argv[1], *argv[2:], timeout=300)  # also checks its derived code deps
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
        self.done.add(stage)


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_corpus, ref_tiny) -> Project:
    root = tmp_path_factory.mktemp("shared")
    tiny_project(root, tiny_corpus, ref_tiny, SPECS)
    project = Project(root)
    project.run(GROUP)
    for run in RUNS:
        for seed in SEEDS:
            project.run(f"perturb.phase3-single/{run}/seed{seed}")
    return project


def outputs(project: Project, spec: str, run: str, seed: int) -> tuple[pd.DataFrame, dict, dict]:
    out = project.root / f"results/{spec}/{run}/seed{seed}"
    return (pd.read_parquet(out / "conditions.parquet"), json.loads((out / "summary.json").read_text()),
            json.loads((out / "manifest.json").read_text()))


def test_compiled_as_one_stage_for_both_runs_and_seeds(project):
    perturb = sorted(name for name in project.stages if name.startswith("perturb.phase3/"))
    assert perturb == [GROUP]
    assert sum(name.startswith("perturb.phase3-single/") for name in project.stages) == 4


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("seed", SEEDS)
def test_every_member_writes_what_its_own_stage_writes(project, run, seed):
    shared, shared_summary, _ = outputs(project, "phase3", run, seed)
    single, single_summary, _ = outputs(project, "phase3-single", run, seed)
    assert len(shared) > 0 and shared["target"].nunique() == 3
    pd.testing.assert_frame_equal(shared, single, check_exact=True)
    assert shared_summary == single_summary  # ΔPPL per condition and the super weights, bit for bit
    assert any(c["delta_ppl"] != 0 for c in shared_summary["conditions"])


def test_each_manifest_records_the_one_load(project):
    manifests = [outputs(project, "phase3", run, seed)[2] for run in RUNS for seed in SEEDS]
    members = [f"results/phase3/{run}/seed{seed}" for run in RUNS for seed in SEEDS]  # spec order, then seeds
    for manifest in manifests:
        assert manifest["status"] == "ok"
        assert manifest["shared_load"] == {"stage": GROUP, "members": members}
    assert len({manifest["load_seconds"] for manifest in manifests}) == 1
    assert "shared_load" not in outputs(project, "phase3-single", "flip", 1)[2]


def test_the_model_is_loaded_once(project, monkeypatch, tmp_path):
    """The group program run in-process, its loader counted, into fresh output folders."""
    import esa.engine.models.loading as loading

    monkeypatch.syspath_prepend(str(REPO))  # stages/ is not an installed package
    from stages import perturb_group

    loads = []
    real = loading.load_stage_model
    monkeypatch.setattr(loading, "load_stage_model", lambda *a, **k: loads.append(1) or real(*a, **k))
    monkeypatch.chdir(project.root)
    argv = shlex.split(project.stages[GROUP]["cmd"])[2:]
    argv = [arg.replace("results/phase3/", f"{tmp_path}/") for arg in argv]
    assert perturb_group.main(argv) == 0
    assert len(loads) == 1
    for run in RUNS:
        for seed in SEEDS:
            again = pd.read_parquet(tmp_path / f"{run}/seed{seed}/conditions.parquet")
            pd.testing.assert_frame_equal(again, outputs(project, "phase3", run, seed)[0], check_exact=True)


def test_a_member_with_missing_inputs_stops_the_group_before_loading(project, tmp_path):
    argv = shlex.split(project.stages[GROUP]["cmd"])[2:]
    argv = [arg.replace("results/phase2/sc/seed2", "results/phase2/sc/seed9") for arg in argv]
    proc = run_stage(project.root, "stages/perturb_group.py", *argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["perturb: results/phase2/sc/seed9/topk.parquet does not exist "
                                                "(run the scoring and baseline stages first)"]
