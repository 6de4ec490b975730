"""Resource requests: a run's (or its sweep's) fields over its spec's, over the command-line flags."""

from __future__ import annotations

import textwrap

import pytest

from esa.cluster.requests import Request, SpecRequests, stage_owner, stage_requests
from esa.spec import SpecErrors, load_spec

SPEC = textwrap.dedent("""\
    phase: 1
    title: t
    hypotheses: [{id: H1, statement: s}]
    sweeps:
      - {id: grid, kind: eval, model: ref-tiny, data: stdlib-tiny, seeds: [7], matrix: {protocol: [smoke]}}
    runs:
      - {id: base, kind: eval, model: ref-tiny, data: stdlib-tiny, protocol: smoke, seeds: [7]}
    resources:
      cpus: 4
      time_minutes: 30
      runs:
        base: {gpus: 1, cpus: 8}
    """)


def test_stage_names_carry_spec_and_run():
    assert stage_owner("eval.phase1/standard-ref-s/seed1337") == ("phase1", "standard-ref-s")
    assert stage_owner("grade.phase1") == ("phase1", None)
    assert stage_owner("corpus.stdlib") == ("stdlib", None)


def test_run_over_spec_over_flags():
    spec = SpecRequests("phase1", Request(cpus=4, time_minutes=30), {"base": Request(gpus=1, cpus=8),
                                                                   "grid": Request(mem_gb=2)},
                        {"base": "", "grid-smoke": "grid"})
    flags = Request(cpus=1, partition="short", time_minutes=5)
    requests = stage_requests(["eval.phase1/base/seed7", "eval.phase1/grid-smoke/seed7", "grade.phase1",
                               "corpus.stdlib"], [spec], flags)
    assert requests == {
        "eval.phase1/base/seed7": Request(cpus=8, gpus=1, time_minutes=30, partition="short"),
        "eval.phase1/grid-smoke/seed7": Request(cpus=4, mem_gb=2, time_minutes=30, partition="short"),
        "grade.phase1": Request(cpus=4, time_minutes=30, partition="short"),
        "corpus.stdlib": flags,  # shared work belongs to no spec
    }


def test_the_spec_resources_block_is_typed(write_spec):
    spec = load_spec(write_spec(SPEC))
    assert spec.resources.cpus == 4 and spec.resources.runs["base"].gpus == 1
    with pytest.raises(SpecErrors, match="resources.gpus: Input should be greater than or equal to 0"):
        load_spec(write_spec(SPEC.replace("  cpus: 4\n", "  cpus: 4\n  gpus: -1\n")))
    with pytest.raises(SpecErrors, match="resources.runs.nope: unknown run or sweep 'nope'"):
        load_spec(write_spec(SPEC.replace("    base: {gpus", "    nope: {gpus")))
    with pytest.raises(SpecErrors, match=r"spec.yaml:9:3: resources.ram: unknown key"):
        load_spec(write_spec(SPEC.replace("  cpus: 4\n", "  ram: 4\n")))
