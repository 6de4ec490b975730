"""Layers of the stages to run: topological levels of the stale stages and everything downstream of them."""

from __future__ import annotations

import pytest

from esa.cluster.plan import ClusterError, layer_stages, read_plan
from esa.notebook.history import dvc_executable
from tests.cluster.dag_project import make_project, sh
from tests.system_tools import needs_git

DEPS = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": set()}


def test_everything_stale_gives_the_diamond_levels():
    assert layer_stages(DEPS, set(DEPS)) == [["a", "e"], ["b", "c"], ["d"]]


def test_downstream_of_a_stale_stage_runs_too():
    # c is up to date itself, but d reads b's new output: d runs, one layer after b.
    assert layer_stages(DEPS, {"b"}) == [["b"], ["d"]]
    assert layer_stages(DEPS, {"a"}) == [["a"], ["b", "c"], ["d"]]


def test_nothing_stale_is_no_layer():
    assert layer_stages(DEPS, set()) == []
    assert layer_stages(DEPS, {"e"}) == [["e"]]


def test_a_stage_waits_for_its_deepest_dependency():
    deps = {"a": set(), "b": {"a"}, "c": {"a", "b"}}
    assert layer_stages(deps, {"a"}) == [["a"], ["b"], ["c"]]


def test_a_cycle_is_an_error():
    with pytest.raises(ClusterError, match="cycle"):
        layer_stages({"a": {"b"}, "b": {"a"}}, {"a"})


@needs_git
def test_dvc_graph_and_status_give_the_layers(tmp_path):
    make_project(tmp_path)
    plan = read_plan(tmp_path, [])
    assert [[job.name for job in layer] for layer in plan.layers] == [["a", "e"], ["b", "c"], ["d"]]
    side = next(job for job in plan.stages if job.name == "e")
    assert side.wdir == "side" and side.cmd.endswith("e.txt e")


@needs_git
def test_targets_keep_their_ancestors_and_up_to_date_stages_drop_out(tmp_path):
    make_project(tmp_path)
    assert [[job.name for job in layer] for layer in read_plan(tmp_path, ["b"]).layers] == [["a"], ["b"]]
    sh(tmp_path, dvc_executable(), "repro", "-q", "b")
    assert [[job.name for job in layer] for layer in read_plan(tmp_path, []).layers] == [["c", "e"], ["d"]]
    assert read_plan(tmp_path, ["b"]).layers == []


@needs_git
def test_an_unknown_target_is_an_error(tmp_path):
    make_project(tmp_path)
    with pytest.raises(ClusterError, match="unknown target 'nope'"):
        read_plan(tmp_path, ["nope"])


def test_no_dvc_yaml_is_an_error(tmp_path):
    with pytest.raises(ClusterError, match="no dvc.yaml"):
        read_plan(tmp_path, [])
