"""`esa compile --check` compares generated files as DVC reads them: DVC's YAML round trip is not a change."""

from dvc.utils.serialize import modify_yaml

from esa.compile.compiler import CompileResult
from esa.compile.emit import dvc_yaml_text, params_yaml_text
from esa.compile.staleness import same_content

SOURCES = {"specs/a.yaml": "a" * 64}
PARAMS = {"phase2": {"gradient": {"components": None, "topk": 200, "lr": 1e-05, "modes": ["per_layer", "global"],
                                  "model": "models/ref-tiny", "note": "word " * 30, "empty": [], "flag": False}}}


def test_a_dvc_round_trip_keeps_the_files_current(tmp_path):
    text = params_yaml_text(PARAMS, SOURCES)
    result = CompileResult(dvc_yaml_text([], SOURCES), text, [], SOURCES)
    result.write(tmp_path)
    with modify_yaml(tmp_path / "params.yaml"):  # what `dvc exp run -S key=value` does, here changing nothing
        pass
    rewritten = (tmp_path / "params.yaml").read_text()
    assert rewritten != text and "components: null" not in rewritten  # DVC rewrote the bytes...
    assert result.stale_files(tmp_path) == []  # ...but not the values
    (tmp_path / "params.yaml").write_text(rewritten.replace("topk: 200", "topk: 100"))
    assert result.stale_files(tmp_path) == ["params.yaml"]


def test_changed_values_types_sources_or_broken_yaml_are_stale():
    text = params_yaml_text(PARAMS, SOURCES)
    assert not same_content(text, text.replace("topk: 200", "topk: 100"))
    assert not same_content(text, text.replace("topk: 200", "topk: 200.0"))  # equal in Python, not to a stage
    assert not same_content(text, text.replace("flag: false", "flag: 0"))
    assert not same_content(text, params_yaml_text(PARAMS, {"specs/a.yaml": "b" * 64}))
    assert not same_content(text, text + "phase9: [\n")
    assert same_content(text, text.replace("# Params here", "# Edited comment; params here"))
