"""Nodes shared by every phase: corpus building, reference-model training, packaged-model conversion (emitted once)."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.own_corpora import own_corpus_config, own_corpus_deps
from esa.compile.plan import Plan, StageNode
from esa.registry import CORPORA, INSTRUCT_MODELS, PACKAGED_MODELS, REFERENCE_MODELS
from esa.spec import Spec

OWN_CORPUS_PROGRAM = "stages/text_corpus.py"


def corpus_dir(name: str) -> str:
    return f"data/{name}"


def reference_dir(name: str) -> str:
    return f"models/{name}"


def _add_shared(plan: Plan, stage: str, section: str, name: str, config, out: str,
                inputs: tuple[tuple[str, str], ...] = ()) -> str:
    """One stage building a shared artifact (a corpus, a trained or converted model) from its params key and input
    folders (flag, path); added once however many runs use it."""
    key = f"{section}.{name}"
    flags = "".join(f" --{flag} {path}" for flag, path in inputs)
    plan.add(
        StageNode(
            name=f"{stage}.{name}",
            cmd=f"python stages/{stage}.py --key {key}{flags} --out {out}",
            deps=(*code_deps(f"stages/{stage}.py", root=plan.root), *(path for _, path in inputs)),
            params=(key,),
            outs=(out,),
        ),
        {key: config.params()},
    )
    return out


def add_corpus(plan: Plan, name: str, spec: Spec | None = None) -> str:
    """A registry corpus, or one the spec declares (built by stages/text_corpus.py, its local text a dep)."""
    if spec is None or name not in spec.corpora:
        return _add_shared(plan, "corpus", "corpora", name, CORPORA[name], corpus_dir(name))
    config = own_corpus_config(spec, name, plan.root)
    key, out = f"corpora.{name}", corpus_dir(name)
    plan.add(
        StageNode(
            name=f"corpus.{name}",
            cmd=f"python {OWN_CORPUS_PROGRAM} --key {key} --out {out}",
            deps=(*code_deps(OWN_CORPUS_PROGRAM, root=plan.root), *own_corpus_deps(spec, name, config)),
            params=(key,),
            outs=(out,),
        ),
        {key: config.params()},
    )
    return out


def add_model(plan: Plan, model: str) -> tuple[str, tuple[str, ...]]:
    """Return (location the stage loads from, deps). Reference models get a training stage, instruct models a
    fine-tuning stage after their base's, packaged models a conversion stage; hub ids and paths need none."""
    if model in INSTRUCT_MODELS:
        instruct = INSTRUCT_MODELS[model]
        base, _ = add_model(plan, instruct.base)
        corpus = add_corpus(plan, instruct.corpus)
        out = _add_shared(plan, "instruct", "instruct_models", model, instruct, reference_dir(model),
                          inputs=(("base", base), ("corpus", corpus)))
    elif model in PACKAGED_MODELS:
        out = _add_shared(plan, "packaged", "packaged_models", model, PACKAGED_MODELS[model], reference_dir(model))
    elif model in REFERENCE_MODELS:
        reference = REFERENCE_MODELS[model]
        corpus = add_corpus(plan, reference.corpus)
        out = _add_shared(plan, "reference", "reference_models", model, reference, reference_dir(model),
                          inputs=(("corpus", corpus),))
    else:
        return model, ()
    return out, (out,)


def results_dir(spec, run_id: str) -> str:
    """Where a run's stages write: results/<spec name>/<run id>."""
    return f"results/{spec.name}/{run_id}"
