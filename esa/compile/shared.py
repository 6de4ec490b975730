"""Nodes shared by every phase: corpus building, reference-model training, packaged-model conversion (emitted once)."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.registry import CORPORA, PACKAGED_MODELS, REFERENCE_MODELS


def corpus_dir(name: str) -> str:
    return f"data/{name}"


def reference_dir(name: str) -> str:
    return f"models/{name}"


def add_corpus(plan: Plan, name: str) -> str:
    out = corpus_dir(name)
    plan.add(
        StageNode(
            name=f"corpus.{name}",
            cmd=f"python stages/corpus.py --key corpora.{name} --out {out}",
            deps=code_deps("stages/corpus.py", root=plan.root),
            params=(f"corpora.{name}",),
            outs=(out,),
        ),
        {f"corpora.{name}": CORPORA[name].params()},
    )
    return out


def add_packaged(plan: Plan, model: str) -> str:
    out = reference_dir(model)
    plan.add(
        StageNode(
            name=f"packaged.{model}",
            cmd=f"python stages/packaged.py --key packaged_models.{model} --out {out}",
            deps=code_deps("stages/packaged.py", root=plan.root),
            params=(f"packaged_models.{model}",),
            outs=(out,),
        ),
        {f"packaged_models.{model}": PACKAGED_MODELS[model].params()},
    )
    return out


def add_model(plan: Plan, model: str) -> tuple[str, tuple[str, ...]]:
    """Return (location the stage loads from, deps). Reference models get a training stage, packaged models a
    conversion stage; hub ids and paths need none."""
    if model in PACKAGED_MODELS:
        out = add_packaged(plan, model)
        return out, (out,)
    reference = REFERENCE_MODELS.get(model)
    if reference is None:
        return model, ()
    corpus = add_corpus(plan, reference.corpus)
    out = reference_dir(model)
    plan.add(
        StageNode(
            name=f"reference.{model}",
            cmd=f"python stages/reference.py --key reference_models.{model} --corpus {corpus} --out {out}",
            deps=(*code_deps("stages/reference.py", root=plan.root), corpus),
            params=(f"reference_models.{model}",),
            outs=(out,),
        ),
        {f"reference_models.{model}": reference.params()},
    )
    return out, (out,)


def results_dir(spec, run_id: str) -> str:
    """Where a run's stages write: results/<spec name>/<run id>."""
    return f"results/{spec.name}/{run_id}"
