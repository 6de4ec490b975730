#!/usr/bin/env bash
# Do two revisions compute the same results? Runs the tiny three-phase project (the specs of tests/kinds: eval;
# score + ablation_check; perturb on ref-tiny) with each revision's code through esa compile, dvc repro and
# esa report, then lists the files under results/ and reports/_site/ whose sha256 differ. A refactor should leave
# only manifests, timestamps and timings different.
#
#     benchmarks/same_outputs.sh OLD_REV [NEW_REV]      # NEW_REV defaults to the working tree
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd); PY=$REPO/.venv/bin/python; WORK=$(mktemp -d)
export HF_HUB_OFFLINE=1 DVC_NO_ANALYTICS=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0 PATH=$REPO/.venv/bin:$PATH
run() {  # run <code folder> <project folder>
  mkdir -p "$2"; cp -r "$1"/esa "$1"/stages "$1"/reports "$2"; rm -rf "$2/reports/_site"
  (cd "$REPO" && PYTHONPATH="$REPO/tests/kinds:$REPO/tests:$REPO" "$PY" -c \
    "import pathlib; from conftest import SPECS
for p, t in SPECS.items(): f = pathlib.Path('$2', p); f.parent.mkdir(parents=True, exist_ok=True); f.write_text(t)")
  (cd "$2" \
   && git init -q && dvc init -q \
   && PYTHONPATH="$2" "$PY" -m esa.cli compile specs/phase1.yaml specs/phase2.yaml specs/phase3.yaml >/dev/null \
   && PYTHONPATH="$2" dvc repro -q >repro.log 2>&1 && PYTHONPATH="$2" "$PY" -m esa.cli report >report.log 2>&1)
  (cd "$2" && find results reports/_site -type f | sort | xargs sha256sum)
}
git -C "$REPO" worktree add -q --detach "$WORK/old-code" "$1"
if [ -n "${2:-}" ]; then git -C "$REPO" worktree add -q --detach "$WORK/new-code" "$2"; NEW=$WORK/new-code; else NEW=$REPO; fi
run "$WORK/old-code" "$WORK/old" > "$WORK/old.sha"; run "$NEW" "$WORK/new" > "$WORK/new.sha"
echo "$(wc -l < "$WORK/new.sha") files; differing:"; { diff <(sort -k2 "$WORK/old.sha") <(sort -k2 "$WORK/new.sha") || true; } | awk '/^>/ {print "  " $3}'
git -C "$REPO" worktree remove --force "$WORK/old-code"; [ -n "${2:-}" ] && git -C "$REPO" worktree remove --force "$WORK/new-code" || true
