"""`esa show SPEC`: runs with sweeps expanded, criteria with the grader's defaults, the stages compile emits and
which are shared — fitted to the terminal width; a bad spec is one located line and exit code 2."""

import shutil
import textwrap

import pytest
import yaml
from click.testing import CliRunner

from esa.cli import main

SPEC = textwrap.dedent("""\
    phase: 1
    title: Tiny baseline, a title long enough that it has to wrap when the terminal is narrow enough to need it
    hypotheses: [{id: H1, statement: PPL is reproducible across seeds}]
    defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2]}
    sweeps:
      - {id: base, kind: eval, matrix: {protocol: [smoke, standard]}}
    runs:
      - {id: gradient, kind: score, metrics: [grad_x_weight], topk: 40, seeds: [1, 2, 3]}
    criteria:
      - {id: cv, hypothesis: H1, kind: seed_cv, runs: [base], threshold: 0.5}
      - {id: stable, hypothesis: H1, kind: jaccard_stability, run: gradient, metric: grad_x_weight}
      - {id: hot, hypothesis: H1, kind: hotspot, run: gradient, metric: grad_x_weight, k: 10}
    """)
OTHER = SPEC.replace("phase: 1", "phase: 2").replace("seeds: [1, 2]}", "seeds: [1, 2, 3]}")


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    for folder in ("stages", "esa", "specs"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs/a.yaml").write_text(SPEC)
    (tmp_path / "specs/b.yaml").write_text(OTHER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def show(spec: str, columns: int, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(columns))
    return CliRunner().invoke(main, ["show", spec])


@pytest.mark.parametrize("columns", [100, 72])
def test_show_lists_runs_criteria_and_the_compiled_stages(project, monkeypatch, columns):
    assert CliRunner().invoke(main, ["compile", "specs/a.yaml", "specs/b.yaml"]).exit_code == 0
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    result = show("specs/a.yaml", columns, monkeypatch)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    text = " ".join(result.stdout.split())  # wrapping aside
    # Sweep-generated runs, with the fields that decide them.
    assert "base-smoke eval · ref-tiny on stdlib-tiny · seeds 1, 2 · float32 cpu · from sweep base" in text
    assert "protocol smoke: context 128, stride 64, 64 windows, batch 16" in text
    assert "metrics grad_x_weight · modes per_layer, global · topk 40 · k_grid 10, 20, 40" in text
    # Criteria: the runs a sweep id stands for, the k the grader uses, the threshold; the ignored k as a warning.
    assert "  cv  seed_cv · H1 · runs base (base-smoke, base-standard)" in lines
    assert "metric grad_x_weight · mode per_layer · k 40 (topk) · threshold > 0.4" in text
    assert "criteria[2].k: k 10 is ignored: hotspot reads the run's whole global top-40" in text
    # Every stage compile emitted for this spec, with its command; shared work names the other spec.
    own = [name for name in stages if "phase2" not in name]
    assert [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in stages] == own
    assert "  corpus.stdlib-tiny  shared with phase2" in lines
    assert "  eval.phase1/base-smoke/seed2" in lines
    assert stages["eval.phase1/base-smoke/seed2"]["cmd"] in text


def test_show_a_spec_that_reads_another(project, monkeypatch):
    result = show("specs/phase3.yaml", 100, monkeypatch)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "  reference.ref-s  shared with phase2" in lines  # phase2 is compiled with the spec it feeds
    assert "  ratio-noise  ratio · H1 · run noise" in lines
    assert any("eval fold 1 of 2" in line for line in lines)
    assert any(line.startswith("  perturb.phase3/signflip-repeat/seed1337") for line in lines)
    assert "      --scores results/phase2/gradient/seed1337" in "\n".join(lines)  # wrapped between options


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("topk: 40,", "topk: 40, tpok: 3,", "specs/a.yaml:8:69: runs[0].tpok: unknown key"),
    ("metric: grad_x_weight}", "metric: grad_x_weight, k: 30}",
     "specs/a.yaml:11:97: criteria[1].k: k 30 is not in run 'gradient' k_grid: stability is computed only at "
     "k = 10, 20, 40 (k_grid and topk)"),
])
def test_a_bad_spec_is_one_located_line_and_exit_2(project, monkeypatch, old, new, expected):
    assert old in SPEC
    (project / "specs/a.yaml").write_text(SPEC.replace(old, new))
    result = show("specs/a.yaml", 100, monkeypatch)
    assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {expected}"]
    assert show("specs/none.yaml", 100, monkeypatch).stderr.splitlines() == ["error: specs/none.yaml: no such spec file"]


def test_a_broken_other_spec_in_dvc_yaml_is_a_note_not_an_error(project, monkeypatch):
    assert CliRunner().invoke(main, ["compile", "specs/a.yaml", "specs/b.yaml"]).exit_code == 0
    (project / "specs/b.yaml").write_text(OTHER.replace("topk: 40,", "topk: 40, tpok: 3,"))
    result = show("specs/a.yaml", 100, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "note: not compared with the other specs in dvc.yaml:" in result.stdout
    assert "  corpus.stdlib-tiny" in result.stdout.splitlines()  # no longer marked shared


def test_show_runs_that_read_other_runs(project, monkeypatch):
    result = show("specs/phase4.yaml", 100, monkeypatch)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "  ladder  scaling · reads other runs' results" in text
    assert "ladder of 6: ref-5xs, ref-4xs, ref-3xs, ref-2xs, ref-xs, ref-s" in text
    assert "reads scores (8 score runs) and signflip (6 perturb runs) (random_k control)" in text
    assert "shifts instruct: ref-s → ref-s-instruct" in text
    assert "range (-0.5, -0.2)" in text and "threshold in [-0.5, -0.2]" in text
    assert "  attention-moe-vs-dense  share_difference · H6 · run architectures: ref-moe vs ref-2xs" in text
