import subprocess
import sys
import textwrap

import pytest

from esa.spec import SpecErrors, load_spec

MINIMAL = textwrap.dedent("""\
    phase: 1
    title: t
    hypotheses:
      - id: H1
        statement: s
    defaults:
      model: ref-tiny
      data: stdlib-tiny
      seeds: [1, 2]
    sweeps:
      - id: base
        kind: eval
        matrix:
          protocol: [smoke, standard]
    criteria:
      - id: cv
        hypothesis: H1
        kind: seed_cv
        runs: [base]
    """)


def errors_of(path) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_spec(path)
    return [str(e) for e in info.value.errors]


def test_minimal_spec_expands_sweeps_with_readable_ids(write_spec):
    spec = load_spec(write_spec(MINIMAL))
    assert [r.id for r in spec.runs] == ["base-smoke", "base-standard"]
    assert [r.protocol for r in spec.runs] == ["smoke", "standard"]
    assert all(r.seeds == [1, 2] and r.model == "ref-tiny" for r in spec.runs)
    assert [r.id for r in spec.select_runs(["base"])] == [r.id for r in spec.runs]
    assert spec.runs[0].resolved()["context"] == 128


def test_unknown_key_in_run_names_file_line_col_and_path(write_spec):
    path = write_spec(MINIMAL + "runs:\n  - id: r1\n    kind: eval\n    sedes: [1]\n")
    assert errors_of(path) == [f"{path}:23:5: runs[0].sedes: unknown key"]


def test_bad_value_from_defaults_points_at_defaults_once(write_spec):
    path = write_spec(MINIMAL.replace("seeds: [1, 2]", "seeds: [1, 1]"))
    assert errors_of(path) == [f"{path}:9:3: defaults.seeds: seeds must be distinct"]


def test_bad_matrix_value_points_at_the_value(write_spec):
    path = write_spec(MINIMAL.replace("[smoke, standard]", "[smoke, standrd]"))
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:14:25: sweeps[0].matrix.protocol[1]: unknown protocol 'standrd'")


def test_unknown_criterion_kind_points_at_kind(write_spec):
    path = write_spec(MINIMAL.replace("kind: seed_cv", "kind: jacard"))
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:18:5: criteria[0].kind: Input tag 'jacard'")


def test_unknown_hypothesis_and_run_references(write_spec):
    path = write_spec(MINIMAL.replace("hypothesis: H1", "hypothesis: H7").replace("runs: [base]", "runs: [nope]"))
    assert errors_of(path) == [
        f"{path}:17:5: criteria[0].hypothesis: unknown hypothesis 'H7' (known: H1)",
        f"{path}:19:12: criteria[0].runs[0]: unknown run or sweep 'nope' (runs: base-smoke, base-standard; sweeps: base)",
    ]


def test_duplicate_ids_and_unknown_model(write_spec):
    text = MINIMAL + "runs:\n  - id: base-smoke\n    kind: eval\n"
    path = write_spec(text)
    # Plain runs come first, so the sweep that generates the same id is the duplicate.
    assert errors_of(path) == [f"{path}:11:5: sweeps[0].id: duplicate run id 'base-smoke' (from a run or a sweep)"]
    path = write_spec(MINIMAL.replace("model: ref-tiny", "model: ref-q"))
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:7:3: defaults.model: unknown model 'ref-q'")


def test_context_beyond_reference_model_positions(write_spec):
    path = write_spec(MINIMAL.replace("[smoke, standard]", "[smoke, extended]"))
    (error,) = errors_of(path)
    assert error == f"{path}:14:25: sweeps[0].matrix.protocol[1]: context 512 exceeds ref-tiny's 256 positions"


def test_duplicate_yaml_key_and_syntax_error(write_spec):
    path = write_spec("phase: 1\nphase: 2\n")
    assert errors_of(path) == [f"{path}:2:1: phase: duplicate key 'phase'"]
    path = write_spec("phase: [1\ntitle: x\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:2:6: <root>: invalid YAML")


def test_yaml_is_loaded_safely(write_spec):
    path = write_spec("phase: !!python/object/apply:os.system ['echo pwned']\n")
    assert errors_of(path) == [f"{path}:1:8: phase: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"]
    path = write_spec("phase: !!python/name:os.system\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:1:8: phase: unsupported YAML value: could not determine a constructor")


def test_cli_prints_one_line_and_exits_2(write_spec, tmp_path):
    path = write_spec(MINIMAL.replace("seeds: [1, 2]", "seeds: [-1, 2]"))
    proc = subprocess.run([sys.executable, "-m", "esa.cli", "compile", str(path)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: {path}:9:3: defaults.seeds: seeds must be integers in [0, 2**32)"]
    assert "Traceback" not in proc.stderr


def test_repository_specs_are_valid(repo_root):
    paths = sorted((repo_root / "specs").glob("*.yaml")) + sorted((repo_root / "specs/real").glob("*.yaml"))
    assert len(paths) > 10
    for path in paths:
        if path.name == "zoo.yaml":
            continue
        spec = load_spec(path)
        assert spec.criteria, path
        schema = "schema.json" if path.parent.name == "specs" else "../schema.json"
        assert path.read_text().startswith(f"# yaml-language-server: $schema={schema}"), path


def test_committed_schema_matches_the_models(repo_root):
    import json

    from esa.spec import Spec

    committed = json.loads((repo_root / "specs/schema.json").read_text())
    expected = Spec.model_json_schema()
    expected["title"] = "esa phase spec"
    assert committed == expected, "specs/schema.json is stale: run `esa schema`"
