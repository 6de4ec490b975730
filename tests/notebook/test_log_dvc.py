"""The research log on real `dvc exp show --json` output: an experiment is logged only for the spec it reran."""

from dvc_project import make_project
from system_tools import needs_git

from esa.notebook.history import read_history
from esa.notebook.log import build_log


@needs_git
def test_an_experiment_is_logged_only_for_the_spec_whose_stages_ran(tmp_path):
    records, note = read_history(make_project(tmp_path))
    assert note is None
    entries = build_log(records)
    experiment = [e.phase for e in entries if e.source.startswith("experiment bigger")]
    commit = sorted(e.phase for e in entries if e.source.startswith("commit"))
    assert experiment == ["s"] and commit == ["s", "t"]  # the workspace is the experiment: listed once
    assert entries[0].source.startswith("experiment bigger") and entries[0].command == "dvc exp run -S p.x=7"
