"""All stages of one spec: each run's stages by its kind's compile rule, then the grade stage reading them."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.git_ignored import IN_GIT
from esa.compile.plan import Plan, StageNode
from esa.kinds import KINDS, grade_outputs
from esa.notebook.lock import lock_path
from esa.spec import Spec

GRADE_PROGRAM = "stages/grade.py"
# Grade outputs kept in git (`cache: false`) beside grades.json: small tables of results (eval summaries, the
# perturbation conditions) that a clean clone shows and the README cites. analysis.json stays in the DVC cache.


def add_spec(plan: Plan, spec: Spec, specs: dict[str, Spec], locked: bool = False) -> None:
    """The spec's runs, then its grade stage.

    The grade stage also reads the phase's run manifests (for the research log) and, once the spec is
    locked, its pre-registration lock file. Its code deps are every module grading imports.
    """
    evidence: list[str] = []
    for run in spec.runs:
        evidence.extend(KINDS[run.kind].build(plan, spec, run, specs))
    own = f"results/{spec.name}/"
    manifests = sorted({f"{path.rsplit('/', 1)[0]}/manifest.json" for path in evidence if path.startswith(own)})
    evidence.extend(manifests)
    if locked:
        evidence.append(lock_path(spec.source).as_posix())
    outs = tuple(f"results/{spec.name}/{name}" for name in grade_outputs(spec))
    grades = f"results/{spec.name}/grades.json"
    plan.add(
        StageNode(
            name=f"grade.{spec.name}",
            cmd=f"python {GRADE_PROGRAM} {spec.source}",
            # Runs reading other runs' results (scaling, architecture) name files their sources name too: once each.
            deps=tuple(dict.fromkeys((spec.source, *code_deps(GRADE_PROGRAM, root=plan.root), *evidence))),
            outs=outs,
            metrics=(grades,),
            # Small and git-tracked: what a clean clone shows and what the README's result tables cite.
            uncached=(grades, *(path for path in outs if path.rsplit("/", 1)[-1] in IN_GIT)),
        )
    )
