"""Load a spec file: YAML with positions → sweeps expanded → pydantic → cross-reference checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from esa.registry import CORPORA, reference_of
from esa.spec.comparison_checks import check_effect_difference
from esa.spec.errors import SpecError, SpecErrors
from esa.spec.models import Spec
from esa.spec.adapt_criteria import check_adapt_criterion
from esa.spec.fault_criteria import check_fault_criterion
from esa.spec.interpret_criteria import check_interpret_criterion
from esa.spec.prune_criteria import check_prune_criterion
from esa.spec.all_runs import fields_by_kind
from esa.spec.sweeps import expand_runs
from esa.spec.yamlpos import YamlPositionError, load_with_positions, locate


# Criterion fields that name one run.
RUN_FIELDS = ("run", "repeat", "against")


def load_spec(path: str | Path) -> Spec:
    """Parse and validate a spec file; raise SpecErrors whose lines name file:line:col and the key."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecErrors([SpecError(file, 1, 1, (), f"cannot read spec: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise SpecErrors([_not_utf8(path.read_bytes(), file)]) from None
    try:
        raw, positions = load_with_positions(text)
    except YamlPositionError as exc:
        raise SpecErrors([SpecError(file, exc.line, exc.col, exc.path, exc.message)]) from None
    if not isinstance(raw, dict):
        raise SpecErrors([SpecError(file, 1, 1, (), "a spec must be a mapping (phase, title, hypotheses, …)")])

    def where(source_path: tuple) -> tuple[int, int]:
        return locate(positions, source_path)

    runs, origin, sweep_members, errors = expand_runs(raw, file, where, fields_by_kind())
    if errors:
        raise SpecErrors(errors)
    document = {**raw, "runs": runs}

    try:
        spec = Spec.model_validate(document)
    except ValidationError as exc:
        raise SpecErrors(_located(exc, document, origin, file, where)) from None
    spec._source, spec._sweep_members = file, sweep_members
    spec._where, spec._origin = where, origin
    spec._name_written = raw.get("name") is not None
    spec._sha256 = hashlib.sha256(text.encode()).hexdigest()
    problems = _cross_check(spec, origin)
    if problems:
        raise SpecErrors([SpecError(file, *where(p), p, m) for p, m in problems])
    return spec


def _not_utf8(data: bytes, file: str) -> SpecError:
    """Point at the first byte that is not UTF-8, and at the key written before it when the rest parses."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
    else:  # the file changed since it was read: nothing left to point at
        return SpecError(file, 1, 1, (), "not UTF-8 text; save the spec as UTF-8")
    line = data.count(b"\n", 0, start) + 1
    col = len(data[data.rfind(b"\n", 0, start) + 1 : start].decode("utf-8")) + 1
    key: tuple = ()
    try:
        _, positions = load_with_positions(data.decode("utf-8", errors="replace"))
        before = [p for p, at in positions.items() if at <= (line, col)]
        key = max(before, key=lambda p: positions[p]) if before else ()
    except YamlPositionError:
        pass  # unparsable even with the byte replaced: the line alone must do
    return SpecError(file, line, col, key, f"not UTF-8 text (byte 0x{data[start]:02x}); save the spec as UTF-8")


def _source_path(loc: tuple, document: dict, origin: dict) -> tuple:
    """Map a pydantic error location (which may hold union tags) to a path in the source file."""
    path: list = []
    node = document
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        # else: a discriminator tag or a model name inserted by pydantic; skip it.
    if len(path) >= 2 and path[0] == "runs":
        index = path[1]
        if len(path) == 2:
            return origin.get((index, None), tuple(path))
        source = origin.get((index, path[2]), origin.get((index, None), ("runs",)))
        return tuple(source) + tuple(path[3:])
    return tuple(path)


def _located(exc: ValidationError, document: dict, origin: dict, file: str, where) -> list[SpecError]:
    errors: dict[tuple, SpecError] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += ("kind",)  # point at the tag, not at the whole item
        message = err["msg"].removeprefix("Value error, ")
        loc += _named_key(err, document, message)
        source = _source_path(loc, document, origin)
        if err["type"] == "extra_forbidden":
            message = _unknown_key(loc, document)
        elif err["type"] == "missing":
            message = f"missing required key '{loc[-1]}'"
        error = SpecError(file, *where(source), source, message)
        errors.setdefault((error.line, error.col, error.message), error)  # defaults can fail once per run
    return list(errors.values())


def _unknown_key(loc: tuple, document: dict) -> str:
    """"unknown key", or which run kinds have it when a run sets another kind's field (share_load on an eval run)."""
    runs = document.get("runs")
    if len(loc) < 3 or loc[0] != "runs" or not isinstance(runs, list) or not isinstance(loc[1], int):
        return "unknown key"
    kind = runs[loc[1]].get("kind") if loc[1] < len(runs) and isinstance(runs[loc[1]], dict) else None
    owners = [name for name, fields in fields_by_kind().items() if loc[-1] in fields]
    if not owners or not isinstance(kind, str):
        return "unknown key"
    return f"{loc[-1]} is a field of {' and '.join(owners)} runs, not of {kind} runs"


def _named_key(err: dict, document: dict, message: str) -> tuple:
    """A check over a whole item whose message starts with one of the item's keys ("threshold must be …")
    is about that key: point there rather than at the item."""
    if err["type"] != "value_error":
        return ()
    node = document
    for part in err["loc"]:
        if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int)
                                                         and part < len(node)):
            node = node[part]
    first = message.split(" ", 1)[0]
    return (first,) if isinstance(node, dict) and first in node else ()


def _known(names, limit: int = 20) -> str:
    """'a, b, c' (sorted), cut short on a spec with very many runs so the error stays one readable line."""
    names = sorted(set(names))
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "none"


def _cross_check(spec: Spec, origin: dict) -> list[tuple[tuple, str]]:
    """References and uniqueness that pydantic cannot see field by field."""
    problems: list[tuple[tuple, str]] = []
    run_index = {run.id: i for i, run in enumerate(spec.runs)}

    def unique(items, section: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                problems.append(((section, i, "id"), f"duplicate id '{item.id}'"))
            seen.add(item.id)

    unique(spec.hypotheses, "hypotheses")
    unique(spec.criteria, "criteria")
    problems.extend(_check_corpora(spec, origin))
    seen_runs: set[str] = set()
    for i, run in enumerate(spec.runs):
        if run.id in seen_runs:
            problems.append((origin[(i, "id")], f"duplicate run id '{run.id}' (from a run or a sweep)"))
        seen_runs.add(run.id)
        if not hasattr(run, "model"):  # a run that reads other runs' results (scaling): checked at compile time
            continue
        reference = reference_of(run.model)
        resolved = run.resolved() if hasattr(run, "resolved") else {"context": run.context}
        if run.kind == "score" and any(k > run.topk for k in run.k_grid):
            problems.append((origin[(i, "k_grid")], f"k_grid values must not exceed topk ({run.topk})"))
        if run.kind == "ablation_check":
            problems.extend(_check_ablation(spec, run, i, origin))
        if reference and resolved.get("context", 0) > reference.max_position_embeddings:
            field = "context" if run.kind != "eval" or run.context else "protocol"
            problems.append((origin.get((i, field), origin[(i, None)]), f"context {resolved['context']} exceeds {run.model}'s "
                                                 f"{reference.max_position_embeddings} positions"))
    hypothesis_ids = {h.id for h in spec.hypotheses}
    known_runs = set(run_index) | set(spec._sweep_members)
    for name in (spec.resources.runs if spec.resources else {}):
        if name not in known_runs:
            problems.append((("resources", "runs", name), f"unknown run or sweep '{name}' (runs: {_known(run_index)})"))
    for i, criterion in enumerate(spec.criteria):
        if criterion.hypothesis not in hypothesis_ids:
            problems.append((("criteria", i, "hypothesis"),
                             f"unknown hypothesis '{criterion.hypothesis}' (known: {', '.join(sorted(hypothesis_ids))})"))
        if getattr(criterion, "runs", "all") != "all":
            for j, name in enumerate(criterion.runs):
                if name not in known_runs:
                    sweeps = f"; sweeps: {_known(spec._sweep_members)}" if spec._sweep_members else ""
                    problems.append((("criteria", i, "runs", j),
                                     f"unknown run or sweep '{name}' (runs: {_known(run_index)}{sweeps})"))
        # Every run a criterion names must exist; the checks by kind below then assume it does.
        unknown = [f for f in RUN_FIELDS if isinstance(getattr(criterion, f, None), str)
                   and getattr(criterion, f) not in run_index]
        for field in unknown:
            problems.append((("criteria", i, field),
                             f"unknown run '{getattr(criterion, field)}' (known: {_known(run_index)})"))
        if unknown:
            continue
        # Every run a criterion names must be of the kind it grades; then that kind's own checks.
        named = [(("criteria", i, f), getattr(criterion, f)) for f in RUN_FIELDS
                 if isinstance(getattr(criterion, f, None), str)]
        named += [(("criteria", i, side, "run"), getattr(criterion, side).run) for side in ("a", "b")
                  if hasattr(getattr(criterion, side, None), "run")]
        kind = criterion.run_kind
        wrong = [(path, run_id) for path, run_id in named
                 if run_id in run_index and spec.runs[run_index[run_id]].kind != kind]
        for path, run_id in wrong:
            problems.append((path, f"'{run_id}' is not {_article(kind)} {kind} run of this spec "
                                   f"({kind} runs: {_ids(spec, kind)})"))
        if wrong:
            continue
        if criterion.kind == "effect_difference":
            problems.extend(check_effect_difference(spec, criterion, ("criteria", i)))
        if kind == "prune":
            problems.extend(check_prune_criterion(spec, criterion, ("criteria", i)))
        elif kind == "adapt":
            problems.extend(check_adapt_criterion(spec, criterion, ("criteria", i)))
        elif kind == "faults":
            problems.extend(check_fault_criterion(spec, criterion, ("criteria", i)))
        elif kind == "interpret":
            problems.extend(check_interpret_criterion(spec, criterion, ("criteria", i)))
        elif kind == "ablation_check":
            problems.extend(_check_ablation_ref(spec, criterion, ("criteria", i)))
        elif kind == "score":
            refs = [(("criteria", i), criterion)] if hasattr(criterion, "metric") else []
            refs += [(("criteria", i, side), getattr(criterion, side)) for side in ("a", "b") if hasattr(criterion, side)]
            for path, ref in refs:
                problems.extend(_check_score_ref(spec, criterion, path, ref))
    return problems


def _check_corpora(spec: Spec, origin: dict) -> list[tuple[tuple, str]]:
    """Runs' `data:` names a registry corpus or one of the spec's `corpora:`; the spec's own shadow none."""
    problems = [(("corpora", name), f"'{name}' is a registry corpus; give the spec's own corpus another name")
                for name in spec.corpora if name in CORPORA]
    known = f"registry: {_known(CORPORA)}; this spec's corpora: {_known(spec.corpora)}"
    unknown = {origin.get((i, "data"), origin[(i, None)]): run.data for i, run in enumerate(spec.runs)
               if hasattr(run, "data") and run.data not in CORPORA and run.data not in spec.corpora}  # a default's error comes once
    return problems + [(where, f"unknown corpus '{name}' ({known})") for where, name in unknown.items()]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _ids(spec: Spec, kind: str) -> str:
    return _known(r.id for r in spec.runs if r.kind == kind)


def _check_ablation_ref(spec: Spec, criterion, path: tuple) -> list[tuple[tuple, str]]:
    run = next((r for r in spec.runs if r.id == criterion.run), None)
    if run is None or run.kind != "ablation_check":
        return [(path + ("run",), f"'{criterion.run}' is not an ablation_check run of this spec "
                                     f"(ablation_check runs: {_ids(spec, 'ablation_check')})")]
    metrics = run.resolved_with(spec.run(run.scores))["metrics"] if any(
        r.id == run.scores and r.kind == "score" for r in spec.runs) else []
    if criterion.metric not in metrics:
        return [(path + ("metric",), f"ablation run '{criterion.run}' does not check {criterion.metric}")]
    return []


def _check_ablation(spec: Spec, run, index: int, origin: dict) -> list[tuple[tuple, str]]:
    """An ablation check reads a score run of the same model and data, on seeds that run has, with saved scores."""
    where = lambda field: origin.get((index, field), origin[(index, None)])  # noqa: E731
    source = next((r for r in spec.runs if r.id == run.scores), None)
    if source is None or source.kind != "score":
        return [(where("scores"), f"'{run.scores}' is not a score run of this spec (score runs: {_ids(spec, 'score')})")]
    problems = []
    if (source.model, source.data) != (run.model, run.data):
        problems.append((where("scores"), f"score run '{run.scores}' uses {source.model} on {source.data}, "
                                          f"this run {run.model} on {run.data}"))
    if source.save_scores is False:
        problems.append((where("scores"), f"score run '{run.scores}' does not keep its scores (save_scores: false)"))
    missing = [m for m in (run.metrics or []) + ([run.rank_by] if run.rank_by else []) if m not in source.metrics]
    if missing:
        problems.append((where("metrics"), f"score run '{run.scores}' does not compute {', '.join(sorted(set(missing)))}"))
    extra = [s for s in run.seeds if s not in source.seeds]
    if extra:
        problems.append((where("seeds"), f"score run '{run.scores}' has no seed {', '.join(map(str, extra))}"))
    return problems


def _check_score_ref(spec: Spec, criterion, path: tuple, ref) -> list[tuple[tuple, str]]:
    """A score criterion must name a score run that computes its metric, in its mode, with enough k."""
    runs = [run for run in spec.runs if run.id == ref.run]
    if not runs:
        return [(path + ("run",), f"unknown run '{ref.run}' (known: {_known(r.id for r in spec.runs)})")]
    run = runs[0]
    if run.kind != "score":
        return [(path + ("run",), f"run '{ref.run}' is a {run.kind} run, not a score run")]
    if ref.metric not in run.metrics:
        return [(path + ("metric",), f"run '{ref.run}' does not compute {ref.metric} (it computes "
                                     f"{', '.join(run.metrics)})")]
    problems = []
    mode = getattr(criterion, "mode", None)
    if mode and mode not in run.modes:
        problems.append((("criteria",) + path[1:2] + ("mode",), f"run '{ref.run}' does not select in {mode} mode"))
    k = getattr(criterion, "k", None)
    if k and k > run.topk:
        problems.append((("criteria",) + path[1:2] + ("k",), f"k {k} exceeds run '{ref.run}' topk {run.topk}"))
    return problems
