"""A spec's own corpora compile to one corpus stage each: the local text is a DVC dependency (inside the project
as a relative path, outside it as an absolute one), runs read data/<name>; bad declarations are one located line."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from click.testing import CliRunner

from esa.cli import main
from esa.compile.compiler import compile_specs

SPEC = textwrap.dedent("""\
    phase: 1
    name: own
    title: own text
    hypotheses: [{id: H1, statement: s}]
    corpora:
      notes: {kind: local_text, path: ./texts/notes/, evaluation_fraction: 0.3, max_train_bytes: 5000}
      outside: {kind: local_text, format: jsonl, id_field: key, path: OUTSIDE}
      wiki: {kind: hf_dataset, dataset: wikitext, config: wikitext-2-raw-v1, splits: [train, test],
             group: wikitext_articles}
    defaults: {model: ref-tiny, seeds: [1]}
    runs:
      - {id: mine, kind: eval, data: notes, protocol: smoke}
      - {id: far, kind: eval, data: outside, protocol: smoke}
      - {id: wiki, kind: eval, data: wiki, protocol: smoke}
      - {id: std, kind: eval, data: stdlib-tiny, protocol: smoke}
    criteria:
      - {id: fin, hypothesis: H1, kind: finite}
    """)


@pytest.fixture
def project(tmp_path, tmp_path_factory, repo_root):
    """A project with the code stages depend on, local text inside it and a JSON-lines file outside it."""
    root = tmp_path / "project"
    (root / "specs").mkdir(parents=True)
    for name in ("esa", "stages"):
        (root / name).symlink_to(repo_root / name)
    (root / "texts/notes").mkdir(parents=True)
    (root / "texts/notes/a.txt").write_text("some text\n")
    outside = tmp_path_factory.mktemp("elsewhere") / "rows.jsonl"
    outside.write_text('{"key": 1, "text": "a row"}\n')
    (root / "specs/own.yaml").write_text(SPEC.replace("OUTSIDE", str(outside)))
    return root, outside


def test_own_corpora_compile_to_corpus_stages_with_the_text_as_a_dependency(project):
    root, outside = project
    result = compile_specs(["specs/own.yaml"], root)
    stages = yaml.safe_load(result.dvc_yaml)["stages"]
    params = yaml.safe_load(result.params_yaml)
    notes = stages["corpus.notes"]
    assert notes["cmd"] == "python stages/text_corpus.py --key corpora.notes --out data/notes"
    assert notes["deps"][0] == "stages/text_corpus.py" and notes["deps"][-1] == "texts/notes"
    assert "esa/engine/data/local_text.py" in notes["deps"] and "esa/engine/data/corpus.py" in notes["deps"]
    assert notes["params"] == ["corpora.notes"] and notes["outs"] == ["data/notes"]
    assert stages["corpus.outside"]["deps"][-1] == str(outside)  # absolute: DVC hashes it where it is
    assert stages["corpus.wiki"]["deps"][-1] == "esa/stageio.py"  # a hub dataset: its params name it
    assert stages["corpus.stdlib-tiny"]["cmd"].startswith("python stages/corpus.py")
    assert params["corpora"]["notes"] == {
        "name": "notes", "kind": "local_text", "path": "texts/notes", "format": "auto", "glob": "**/*",
        "separator": "", "text_field": "text", "id_field": "", "calibration_fraction": 0.1,
        "evaluation_fraction": 0.3, "max_train_bytes": 5000, "max_calibration_bytes": 0, "max_evaluation_bytes": 0}
    assert params["corpora"]["wiki"]["splits"] == ["train", "test"]
    for run, corpus in (("mine", "notes"), ("far", "outside"), ("wiki", "wiki"), ("std", "stdlib-tiny")):
        assert params["own"][run]["data"] == f"data/{corpus}"
        assert f"data/{corpus}" in stages[f"eval.own/{run}/seed1"]["deps"]


def test_a_dataset_folder_on_disk_is_a_dependency_too(project):
    root, _ = project
    (root / "ds").mkdir()
    spec = root / "specs/own.yaml"
    spec.write_text(spec.read_text().replace("dataset: wikitext,", "dataset: ./ds,"))
    stages = yaml.safe_load(compile_specs(["specs/own.yaml"], root).dvc_yaml)["stages"]
    assert stages["corpus.wiki"]["deps"][-1] == "ds"


def compile_error(root, monkeypatch, *specs: str) -> str:
    monkeypatch.chdir(root)
    result = CliRunner().invoke(main, ["compile", *specs])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr and result.stdout == ""
    (line,) = result.stderr.splitlines()
    return line.replace(f"{root}/", "")  # errors found while loading name the spec by its full path


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("data: notes,", "data: noets,", "12:28: runs[0].data: unknown corpus 'noets' (registry: stdlib, stdlib-tiny; "
                                     "this spec's corpora: notes, outside, wiki)"),
    ("path: ./texts/notes/", "path: ./texts/nothing", "6:29: corpora.notes.path: './texts/nothing' does not exist"),
    ("format: jsonl", "format: csv", "7:31: corpora.outside.format: Input should be 'auto', 'folder', 'txt' or"),
    ("id_field: key", "id_feld: key", "7:46: corpora.outside.id_feld: unknown key"),
    ("kind: hf_dataset", "kind: hf", "8:10: corpora.wiki.kind: Input tag 'hf' found using 'kind' does not match"),
    ("  notes: {", "  stdlib: {", "6:3: corpora.stdlib: 'stdlib' is a registry corpus; give the spec's own corpus"),
    ("evaluation_fraction: 0.3", "evaluation_fraction: 0.95",
     "6:3: corpora.notes: calibration_fraction and evaluation_fraction must sum to less than 1"),
])
def test_bad_corpus_declarations_are_one_located_line(project, monkeypatch, old, new, expected):
    root, _ = project
    spec = root / "specs/own.yaml"
    assert old in spec.read_text()
    spec.write_text(spec.read_text().replace(old, new))
    if new.startswith("  stdlib"):
        spec.write_text(spec.read_text().replace("data: notes,", "data: stdlib,"))
    assert compile_error(root, monkeypatch, "specs/own.yaml").startswith(f"error: specs/own.yaml:{expected}")


def test_two_specs_may_share_a_corpus_only_when_they_declare_it_alike(project, monkeypatch):
    root, _ = project
    text = (root / "specs/own.yaml").read_text()
    (root / "specs/same.yaml").write_text(text.replace("name: own", "name: same"))
    assert compile_specs(["specs/own.yaml", "specs/same.yaml"], root).stages.count("corpus.notes") == 1
    (root / "specs/other.yaml").write_text(text.replace("name: own", "name: other").replace("0.3", "0.2"))
    assert compile_error(root, monkeypatch, "specs/own.yaml", "specs/other.yaml") == (
        "error: specs/own.yaml:6:3: corpora.notes: corpus 'notes' is declared differently by specs/other.yaml; "
        "give one of them another name")
