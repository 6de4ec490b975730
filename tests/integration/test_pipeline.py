"""End to end: esa compile + dvc repro + dvc exp run in a temporary git+DVC project with the tiny model."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from project_commands import run
from system_tools import needs_git

from esa.compile.git_ignored import GITIGNORE_LINES

pytestmark = [pytest.mark.integration, needs_git]

SPEC = textwrap.dedent("""\
    # yaml-language-server: $schema=schema.json
    phase: 1
    title: Tiny baseline
    hypotheses:
      - {id: H1, statement: PPL is reproducible across seeds}
      - {id: H2, statement: PPL is a sane baseline}
    defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2], max_windows: 24}
    sweeps:
      - kind: eval
        matrix: {protocol: [smoke]}
    criteria:
      - {id: cv, hypothesis: H1, kind: seed_cv, threshold: 0.5}
      - {id: fin, hypothesis: H2, kind: finite}
      - {id: sane, hypothesis: H2, kind: ppl_sanity, threshold: 0.9}
    """)



@pytest.fixture(scope="module")
def project(tmp_path_factory, request):
    repo = Path(request.config.rootpath)
    root = tmp_path_factory.mktemp("project")
    for folder in ("stages", "esa", "reports"):
        shutil.copytree(repo / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "_site"))
    (root / "specs").mkdir()
    (root / "specs/phase1.yaml").write_text(SPEC)
    # As the project's own .gitignore: grades and summaries (cache: false) stay visible to git for the history.
    (root / ".gitignore").write_text("\n".join([*GITIGNORE_LINES, "/models/", "/data/", ""]))
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["esa", "compile", "specs/phase1.yaml"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    run(["dvc", "repro"], root)
    return root


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_repro_produces_metrics_manifest_and_grades(project):
    metrics = [read_json(project / f"results/phase1/smoke/seed{seed}/metrics.json") for seed in (1, 2)]
    for m in metrics:
        assert m["status"] == "ok" and m["n_windows"] == 24
        assert 1.5 < m["ppl"] < 512  # honest for a tiny model: better than uniform, not suspiciously low
        assert 0 < m["top1_accuracy"] < 1 and m["bits_per_byte"] > 0
    assert metrics[0]["ppl"] != metrics[1]["ppl"]  # seeds draw different windows
    drawn = [read_json(project / f"results/phase1/smoke/seed{seed}/sampling.json") for seed in (1, 2)]
    assert not set(drawn[0]["doc_ids"]) & set(drawn[1]["doc_ids"])  # ... from different documents
    assert [d["fold"] for d in drawn] == [0, 1] and all(d["folds"] == 2 for d in drawn)
    manifest = read_json(project / "results/phase1/smoke/seed1/manifest.json")
    assert manifest["status"] == "ok" and manifest["spec_sha256"] and manifest["params"]["context"] == 128
    grades = read_json(project / "results/phase1/grades.json")
    for cid, c in grades["criteria"].items():  # graded on its evidence (two seeds may leave a CV undecided)
        assert c["status"] in ("pass", "fail", "inconclusive") and "missing" not in c["reason"], (cid, c)
    assert grades["draws"]["smoke"]["max_shared_docs"] == 0
    assert grades["criteria"]["fin"]["status"] == "pass"
    splits = read_json(project / "data/stdlib-tiny/splits.json")
    assert splits["disjoint"] is True


def test_second_repro_is_cached_and_compile_is_stable(project):
    proc = run(["dvc", "repro"], project)
    assert "up to date" in proc.stdout.lower() or "didn't change" in proc.stdout.lower()
    before = (project / "dvc.yaml").read_bytes()
    run(["esa", "compile", "specs/phase1.yaml"], project)
    assert (project / "dvc.yaml").read_bytes() == before
    run(["esa", "compile", "--check"], project)


def test_exp_run_set_param_changes_the_result(project):
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "results", "--allow-empty"], project)
    before = read_json(project / "results/phase1/smoke/seed1/metrics.json")
    run(["dvc", "exp", "run", "-S", "phase1.smoke.max_windows=12"], project)
    after = read_json(project / "results/phase1/smoke/seed1/metrics.json")
    assert before["n_windows"] == 24 and after["n_windows"] == 12
    assert after["n_tokens"] < before["n_tokens"]
    shown = run(["dvc", "exp", "show", "--json"], project).stdout
    assert "max_windows" in shown


def test_log_lock_amendment_and_the_whole_site(project):
    log = run(["esa", "log"], project).stdout
    assert "dvc exp run -S phase1.smoke.max_windows=12" in log
    assert "param phase1.smoke.max_windows: 24 → 12" in log
    assert log.count("## ") == 2  # the experiment (also the workspace) and the commit it was run from

    locked = run(["esa", "lock", "specs/phase1.yaml"], project).stdout
    assert "pre-registered" in locked and "recompiled dvc.yaml" in locked
    spec = project / "specs/phase1.yaml"
    spec.write_text(spec.read_text().replace("kind: seed_cv, threshold: 0.5", "kind: seed_cv, threshold: 0.9"))
    run(["dvc", "repro"], project)  # only the grade stage reruns
    lock = read_json(project / "results/phase1/grades.json")["lock"]
    assert lock["state"] == "amended after lock" and lock["changes"] == {"criteria": {"cv": "changed"}}

    run(["esa", "report", "--no-quarto"], project)
    site = project / "reports/_site"
    assert (site / "index.html").exists() and "amended after lock" in (site / "phase1.html").read_text()
    if shutil.which("chromium"):
        checked = run(["esa", "check-site", str(site)], project).stdout
        pages = len(list(site.glob("*.html")))
        assert f"{pages}/{pages} pages ok" in checked
