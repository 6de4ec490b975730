"""Stage: grade every criterion of a spec from its runs' artifacts (`esa grade SPEC` prints what it wrote).

    python stages/grade.py specs/phase1.yaml

Writes results/<phase>/grades.json and the analyses the report reads. A stage program of its own, so the
compiler can read exactly which modules grading runs from its imports (they are the stage's code deps).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.grading.grade import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
