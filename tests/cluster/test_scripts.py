"""The SLURM scripts and sbatch lines `esa submit --slurm` writes: arrays per layer, afterok chains, resources and
the final `dvc commit` job."""

from __future__ import annotations

from pathlib import Path

from esa.cluster.plan import ClusterPlan, StageJob
from esa.cluster.requests import Request
from esa.cluster.scripts import request_lines
from esa.cluster.slurm import submit_line, write_jobs

ROOT = Path("/shared/project")


def job(name: str, wdir: str = ".") -> StageJob:
    return StageJob(name, f"python stages/{name}.py", wdir)


PLAN = ClusterPlan([[job("a"), job("e", "side")], [job("b"), job("c")], [job("d")]])


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_one_array_per_layer_chained_by_afterok(tmp_path):
    requests = {stage.name: Request(cpus=2) for stage in PLAN.stages}
    jobs = write_jobs(PLAN, requests, tmp_path, ROOT, "/venv/bin/dvc")
    assert [(j.key, j.after, j.stages) for j in jobs] == [
        ("layer0", (), ("a", "e")), ("layer1", ("layer0",), ("b", "c")), ("layer2", ("layer1",), ("d",)),
        ("commit", ("layer2",), ())]
    assert [submit_line(j) for j in jobs] == [
        f"layer0=$(sbatch --parsable {tmp_path}/layer0.sbatch)",
        f"layer1=$(sbatch --parsable --dependency=afterok:$layer0 {tmp_path}/layer1.sbatch)",
        f"layer2=$(sbatch --parsable --dependency=afterok:$layer1 {tmp_path}/layer2.sbatch)",
        f"commit=$(sbatch --parsable --dependency=afterok:$layer2 {tmp_path}/commit.sbatch)"]
    assert (tmp_path / "submit.sh").read_text().splitlines()[3:] == [submit_line(j) for j in jobs]


def test_array_script_maps_task_ids_to_stage_commands(tmp_path):
    write_jobs(PLAN, {stage.name: Request() for stage in PLAN.stages}, tmp_path, ROOT, "dvc")
    first = lines(tmp_path / "layer0.sbatch")
    assert "#SBATCH --array=0-1" in first
    assert f"#SBATCH --chdir={ROOT}" in first
    assert "#SBATCH --kill-on-invalid-dep=yes" not in first  # the first layer waits for nothing
    task0 = first.index("  0)")
    assert first[task0:task0 + 5] == ["  0)", "    echo 'esa: stage a'", f"    cd {ROOT}", "python stages/a.py",
                                      "    ;;"]
    task1 = first.index("  1)")
    assert first[task1 + 2:task1 + 4] == [f"    cd {ROOT}/side", "python stages/e.py"]
    last = lines(tmp_path / "layer2.sbatch")
    assert "#SBATCH --array=0-0" in last and "#SBATCH --kill-on-invalid-dep=yes" in last


def test_commit_job_records_every_stage(tmp_path):
    write_jobs(PLAN, {stage.name: Request() for stage in PLAN.stages}, tmp_path, ROOT, "/venv/bin/dvc")
    commit = lines(tmp_path / "commit.sbatch")
    assert "/venv/bin/dvc commit -f a e b c d" in commit
    assert "#SBATCH --array" not in "\n".join(commit)


def test_resources_become_sbatch_options():
    request = Request(cpus=4, mem_gb=1.5, gpus=1, time_minutes=90, partition="gpu")
    assert request_lines(request, "lab") == [
        "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=1536M",
        "#SBATCH --gres=gpu:1", "#SBATCH --time=90"]
    assert request_lines(Request(gpus=0), None) == []


def test_stages_asking_for_different_resources_get_their_own_arrays(tmp_path):
    requests = {stage.name: Request(cpus=1) for stage in PLAN.stages}
    requests["e"] = Request(gpus=1)
    jobs = write_jobs(PLAN, requests, tmp_path, ROOT, "dvc")
    assert [(j.key, j.after, j.stages) for j in jobs[:3]] == [
        ("layer0_0", (), ("a",)), ("layer0_1", (), ("e",)), ("layer1", ("layer0_0", "layer0_1"), ("b", "c"))]
    assert "#SBATCH --gres=gpu:1" in lines(tmp_path / "layer0_1.sbatch")
    assert "#SBATCH --gres=gpu:1" not in lines(tmp_path / "layer0_0.sbatch")
    assert submit_line(jobs[2]).startswith("layer1=$(sbatch --parsable --dependency=afterok:$layer0_0:$layer0_1 ")
