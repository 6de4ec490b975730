"""The compiler: specs → one plan (typed DAG) → literal dvc.yaml + params.yaml, checked before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from esa.compile.mismatches import check_criteria
from esa.compile.architecture_checks import check_architecture
from esa.compile.model_checks import check_models
from esa.compile.scaling_checks import check_scaling
from esa.compile.own_corpora import check_own_corpora
from esa.compile.emit import dvc_yaml_text, params_yaml_text, read_sources
from esa.compile.spec_stages import add_spec
from esa.compile.staleness import same_content
from esa.notebook.lock import lock_path
from esa.compile.plan import Plan, PlanError
from esa.compile.application_checks import check_application_references, check_critical_sets
from esa.compile.references import check_references, referenced_specs
from esa.spec import Spec, SpecError, SpecErrors, load_spec

__all__ = ["CompileResult", "PlanError", "build_plan", "compile_specs", "load_specs", "resolve_sources"]


@dataclass
class CompileResult:
    dvc_yaml: str
    params_yaml: str
    stages: list[str]
    sources: dict[str, str]
    warnings: list[SpecError] = field(default_factory=list)  # settings the grader ignores or cannot decide on
    uncached: list[str] = field(default_factory=list)  # outputs kept in git (`cache: false`)

    def write(self, root: Path) -> None:
        (root / "dvc.yaml").write_text(self.dvc_yaml)
        (root / "params.yaml").write_text(self.params_yaml)

    def stale_files(self, root: Path) -> list[str]:
        """Generated files whose values or source specs differ from this result (DVC's rewrites are not changes)."""
        stale = []
        for name, text in (("dvc.yaml", self.dvc_yaml), ("params.yaml", self.params_yaml)):
            path = root / name
            if not path.exists() or not same_content(text, path.read_text()):
                stale.append(name)
        return stale


def relative_source(path: str | Path, root: Path) -> str:
    """A spec's path as dvc.yaml records it: relative to the project root."""
    path = Path(path)
    absolute = path if path.is_absolute() else (root / path)
    try:
        return absolute.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise PlanError(f"{path}: specs must live inside the project ({root})") from None


def resolve_sources(specs: list[str], root: Path, fresh: bool = False) -> list[str]:
    """The specs to compile: those given plus those the current dvc.yaml was compiled from (so phases accumulate)."""
    given = [relative_source(spec, root) for spec in specs]
    recorded = [] if fresh else read_sources(root / "dvc.yaml")
    missing = [path for path in recorded if path not in given and not (root / path).exists()]
    if missing:
        raise PlanError(f"dvc.yaml was compiled from {', '.join(missing)}, which no longer exists; "
                        f"run `esa compile --fresh` with the specs to keep")
    return sorted(set(given) | set(recorded))


def load_specs(sources: list[str], root: Path) -> dict[str, Spec]:
    """Every source spec (paths relative to ``root``) and the specs they reference, checked across specs.

    Criteria whose settings the runs they grade cannot satisfy, and local models that are not there, are errors
    here (esa.compile.mismatches, esa.compile.model_checks); each spec keeps its warnings in ``spec.warnings``.
    """
    if not sources:
        raise PlanError("nothing to compile: name a spec, e.g. `esa compile specs/phase1.yaml`")
    specs: dict[str, Spec] = {}
    errors: list[SpecError] = []
    pending = list(sources)
    while pending:  # specs referenced by others (Phase 3 reads Phase 2's scores) are compiled with them
        source = pending.pop(0)
        if source in specs:
            continue
        try:
            spec = load_spec(root / source)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            specs[source] = None
            continue
        spec._source = source  # stage commands name the spec relative to the project root
        specs[source] = spec
        pending.extend(ref for ref in referenced_specs(spec) if ref not in specs)
    if errors:
        raise SpecErrors(errors)
    clash = _name_clash(specs)
    if clash:
        raise SpecErrors([clash])
    cross = [error for spec in specs.values() for error in check_references(spec, specs)]
    cross.extend(error for spec in specs.values() for error in check_application_references(spec, specs))
    cross.extend(error for spec in specs.values() for error in check_critical_sets(spec, specs))
    cross.extend(check_own_corpora(specs, root))
    for spec in specs.values():
        found, spec._warnings = check_criteria(spec)
        model_errors, model_warnings = check_models(spec, root)
        cross.extend([*found, *model_errors, *check_scaling(spec, root), *check_architecture(spec)])
        spec._warnings.extend(model_warnings)
    if cross:
        raise SpecErrors(cross)
    return specs


def build_plan(specs: dict[str, Spec], root: Path, only: str | None = None) -> Plan:
    """The plan of every spec, or of the spec at source ``only`` (which stages that one spec emits)."""
    plan = Plan(root=root)
    for spec in sorted(specs.values(), key=lambda s: (s.phase, s.name)):
        if only is None or spec.source == only:
            add_spec(plan, spec, specs, locked=(root / lock_path(spec.source)).exists())
    return plan


def compile_specs(sources: list[str], root: Path) -> CompileResult:
    """Compile every source spec (paths relative to ``root``) into one plan."""
    specs = load_specs(sources, root)
    plan = build_plan(specs, root)
    digests = {source: spec.sha256 for source, spec in specs.items()}
    nodes = plan.ordered(root)
    return CompileResult(
        dvc_yaml=dvc_yaml_text(nodes, digests),
        params_yaml=params_yaml_text(plan.params, digests),
        stages=[node.name for node in nodes],
        sources=digests,
        warnings=[warning for source in sorted(specs) for warning in specs[source].warnings],
        uncached=[path for node in nodes for path in node.uncached],
    )


def _name_clash(specs: dict[str, Spec]) -> SpecError | None:
    """Two specs of one name would write the same results/<name>/ and grade.<name>: point at the later one."""
    seen: dict[str, str] = {}
    for source in sorted(specs):
        spec = specs[source]
        if spec.name in seen:
            how = "" if spec._name_written else f" (the default for phase {spec.phase})"
            return spec.error_at_name(f"spec name '{spec.name}'{how} is already used by {seen[spec.name]}; "
                                      f"give one of them another `name:`")
        seen[spec.name] = source
    return None
