"""What the Phase-5 run kinds (prune, adapt) share at compile time: the score run whose saved tensors they read,
paired by seed, and the shared Phase-3 baseline they are evaluated against."""

from __future__ import annotations

from dataclasses import dataclass

from esa.compile.plan import Plan
from esa.compile.references import score_run_of
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.kinds.perturb import add_baseline
from esa.spec import Spec


def paired_seeds(run_seeds: list[int], source_seeds: list[int]) -> list[int]:
    """The source seed each of the run's seeds reads: the one at the same position when the source has as many,
    else the source's first (a data-free selection such as the super weights needs one seed)."""
    if len(source_seeds) >= len(run_seeds):
        return list(source_seeds[: len(run_seeds)])
    return [source_seeds[0]] * len(run_seeds)


@dataclass(frozen=True)
class SavedScoreInputs:
    source: Spec  # the spec holding the score run
    score_run: object
    baseline: str  # the shared baseline's folder
    inputs: tuple[str, ...]  # data, model and the baseline's windows: every seed's stage reads them
    key: str  # the run's params key
    params: dict  # the run's params

    def score_folder(self, seed: int) -> str:
        return f"{results_dir(self.source, self.score_run.id)}/seed{seed}"


def saved_score_inputs(plan: Plan, spec: Spec, run, specs: dict[str, Spec]) -> SavedScoreInputs:
    """Adds the baseline, model and corpus stages; the params hold the run's resolved fields and its score seeds."""
    source = specs[run.scores.spec]
    score_run = score_run_of(source, run)
    baseline = add_baseline(plan, spec, run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    params = {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data,
              **run.resolved(), "scores": run.scores.model_dump(),
              "score_seeds": paired_seeds(run.seeds, score_run.seeds)}
    return SavedScoreInputs(source, score_run, baseline, (data, *model_deps, f"{baseline}/sequences.parquet"),
                            f"{spec.name}.{run.id}", params)
