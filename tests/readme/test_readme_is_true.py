"""The project's README: every generated table equals what its committed results give, and every number of a cited
region is found in the files it cites. Fails when a result changes and the README is not regenerated
(`esa readme`), or when prose quotes a number the results do not hold."""

from pathlib import Path

from esa.readme.blocks import find_blocks
from esa.readme.check import check_file

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_cites_committed_results_and_quotes_them_faithfully():
    blocks = find_blocks(README.read_text(encoding="utf-8"))
    assert {b.kind for b in blocks} == {"table", "cites"}
    outcome = check_file(README)
    assert outcome.problems == [], "\n".join(outcome.problems + ["run `esa readme` after regrading"])
