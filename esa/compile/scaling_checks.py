"""Compile-time checks of scaling runs: the runs they name exist and are of the right kind, one per model, at least
4 models, and every model of a ladder tokenizes text the same way (per-token quantities of models with different
tokenizers do not belong in one fit).

Tokenizers are compared where that is known before any stage runs: the project's reference models (one trained BPE
per corpus and vocabulary size), instruct models (their base's), packaged models (their own), and local or cached
hub checkpoints (a hash of their tokenizer files). A hub model not in the cache is compared at run time instead:
the score stage records a fingerprint of every tokenizer and the grade stage refuses to fit models whose differ.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from esa.analysis.scaling_data import MIN_MODELS
from esa.registry import INSTRUCT_MODELS, PACKAGED_MODELS, REFERENCE_MODELS
from esa.spec import Spec, SpecError
from esa.spec.model_source import is_hub_id, is_local_path, local_location
from esa.spec.scaling_runs import runs_named

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "vocab.txt")


def tokenizer_identity(model: str, root: Path, revision: str | None = None) -> str | None:
    """What decides how ``model`` tokenizes, as a comparable string; None when that cannot be known offline."""
    if model in INSTRUCT_MODELS:
        return tokenizer_identity(INSTRUCT_MODELS[model].base, root)
    if model in REFERENCE_MODELS:
        ref = REFERENCE_MODELS[model]
        return f"BPE trained on {ref.corpus}, vocabulary {ref.vocab_size}"
    if model in PACKAGED_MODELS:
        return f"the tokenizer of {model}"
    files: list[Path] = []
    if is_local_path(model):
        folder = Path(root) / local_location(model)
        files = [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()]
    elif is_hub_id(model):
        from huggingface_hub import try_to_load_from_cache

        for name in TOKENIZER_FILES:
            found = try_to_load_from_cache(model, name, revision=revision)
            if isinstance(found, str):
                files.append(Path(found))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"tokenizer files sha256 {digest.hexdigest()[:12]}"


def check_scaling(spec: Spec, root: Path) -> list[SpecError]:
    errors = []
    for run in spec.runs:
        if run.kind != "scaling":
            continue
        problem = _problem(spec, run, root)
        if problem:
            errors.append(spec.error_at_run(run.id, problem[0], problem[1]))
    return errors


def _problem(spec: Spec, run, root: Path) -> tuple[str, str] | None:
    """(field, message) of the first thing wrong with a scaling run, or None."""
    scores = runs_named(spec, run.scores, "score")
    if not scores:
        return "scores", f"'{run.scores}' is neither a score run nor a sweep of score runs of this spec"
    by_model = one_per_model(scores)
    if isinstance(by_model, str):
        return "scores", by_model
    if run.perturb is not None:
        perturbs = runs_named(spec, run.perturb, "perturb")
        if not perturbs:
            return "perturb", f"'{run.perturb}' is neither a perturb run nor a sweep of perturb runs of this spec"
        perturbed = one_per_model(perturbs)
        if isinstance(perturbed, str):
            return "perturb", perturbed
        lacking = [m for m in (run.models or by_model) if m not in perturbed]
        if lacking:
            return "perturb", f"no perturb run of {', '.join(lacking)} in '{run.perturb}'"
    if run.models:
        unknown = [m for m in run.models if m not in by_model]
        if unknown:
            return "models", f"'{run.scores}' scores no run of {', '.join(unknown)} (it scores {', '.join(by_model)})"
    models = run.models or list(by_model)
    field = "models" if run.models else "scores"
    if len(models) < MIN_MODELS:
        return field, (f"a scaling fit needs at least {MIN_MODELS} models, got {len(models)} ({', '.join(models)})")
    missing = [m for m in models if run.metric not in by_model[m].metrics]
    if missing:
        return "metric", f"the score runs of {', '.join(missing)} do not compute {run.metric}"
    small = [m for m in models if run.k > by_model[m].topk or run.mode not in by_model[m].modes]
    if small:
        return "k", f"the score runs of {', '.join(small)} do not select top-{run.k} in {run.mode} mode"
    if any(by_model[m].save_scores is False for m in models):
        return "scores", "the distribution quantities read saved score tensors: the score runs need save_scores"
    identities = {m: tokenizer_identity(m, root, getattr(by_model[m], "revision", None)) for m in models}
    known = {m: t for m, t in identities.items() if t is not None}
    if len(set(known.values())) > 1:
        groups: dict[str, list[str]] = {}
        for model, identity in known.items():
            groups.setdefault(identity, []).append(model)
        return field, ("the models have different tokenizers, so per-token quantities do not belong in one fit: "
                       + "; ".join(f"{', '.join(ms)}: {identity}" for identity, ms in groups.items()))
    return None


def one_per_model(runs: list) -> dict | str:
    """{model: run}, or why not (two runs of one model)."""
    found: dict = {}
    for run in runs:
        if run.model in found:
            return f"runs '{found[run.model].id}' and '{run.id}' both use {run.model}: a ladder needs one per model"
        found[run.model] = run
    return found
