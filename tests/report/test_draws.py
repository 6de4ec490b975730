"""What each seed drew, read back from sampling.json: overlaps, shortfalls, the page table and the log line."""

import json
import textwrap

from esa.grading.draws import describe, overlap_problem, phase_draws, shortfall_note
from esa.report.tables_draws import draws_frame
from esa.spec import load_spec

SPEC = textwrap.dedent("""\
    phase: 1
    title: t
    hypotheses: [{id: H1, statement: s}]
    defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2, 3]}
    runs:
      - {id: a, kind: eval, protocol: smoke}
    criteria:
      - {id: fin, hypothesis: H1, kind: finite}
    """)


def write(root, seed, docs, n_windows=4, requested=4):
    out = root / f"results/phase1/a/seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sampling.json").write_text(json.dumps({
        "unit": "document", "folds": 3, "fold": seed - 1, "pool_windows": 30, "pool_docs": 9, "fold_windows": 10,
        "fold_docs": 3, "requested": requested, "n_windows": n_windows, "shortfall": n_windows < requested,
        "n_docs": len(docs), "doc_ids": docs, "window_ids": [f"{d}:0" for d in docs]}))


def draws_of(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    return phase_draws(load_spec(tmp_path / "spec.yaml"), tmp_path)["a"]


def test_disjoint_seeds_pass_the_gate_and_are_described(tmp_path):
    for seed, docs in ((1, ["x", "y"]), (2, ["z"]), (3, ["w", "v"])):
        write(tmp_path, seed, docs)
    draws = draws_of(tmp_path)
    assert draws["max_shared_docs"] == 0 and overlap_problem(draws) is None and shortfall_note(draws) == ""
    assert describe(draws) == ("pool 30 windows / 9 docs; 3 document-disjoint parts; 4 windows from 1–2 docs per "
                               "seed; no shared documents")
    row = draws_frame({"a": draws}).iloc[0]
    assert row["shared docs"] == 0 and row["windows per seed"] == "4 of 4" and row["short"] == "none"


def test_shared_documents_and_missing_records_block_seed_criteria(tmp_path):
    write(tmp_path, 1, ["x", "y"])
    write(tmp_path, 2, ["y", "z"])
    draws = draws_of(tmp_path)
    assert "no record" in overlap_problem(draws)  # seed 3 has none
    write(tmp_path, 3, ["v"], n_windows=2)
    draws = draws_of(tmp_path)
    assert draws["pairs"][0] == {"seed_a": 1, "seed_b": 2, "shared_docs": 1, "shared_windows": 1}
    assert "share data" in overlap_problem(draws)
    assert draws["shortfall"] == [3] and "1 seeds drew only 2–2 of 4 windows" in shortfall_note(draws)
