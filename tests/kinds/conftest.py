"""One tiny project shared by the run-kind tests: specs using every run kind, compiled with the real compiler,
and the compiled stage commands run (once each, on demand) on the session's ref-tiny model and stdlib-tiny corpus.

Driving the stages through the commands and params.yaml that `esa compile` emits tests the compile rule and the
stage program together: a params key the stage needs but the compiler forgets fails here.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from stage_runner import run_stage, tiny_project
from tiny_ladder import build_tiny_ladder

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}

HEAD = "title: kinds\nhypotheses: [{id: H1, statement: s}]\ndefaults: {model: ref-tiny, data: stdlib-tiny}\n"
SPECS = {
    "specs/phase1.yaml": HEAD + textwrap.dedent("""\
        phase: 1
        runs:
          - {id: ev, kind: eval, protocol: smoke, max_windows: 6, seeds: [7, 8]}
        criteria:
          - {id: fin, hypothesis: H1, kind: finite}
        """),
    "specs/phase2.yaml": HEAD + textwrap.dedent("""\
        phase: 2
        runs:
          - {id: sc, kind: score, metrics: [grad_x_weight, magnitude], topk: 8, max_windows: 4, context: 64,
             seeds: [1, 2]}
          - {id: abl, kind: ablation_check, scores: sc, top: 3, n_random: 5, eval_windows: 3, context: 64,
             batch_size: 4, seeds: [1]}
        criteria:
          - {id: stab, hypothesis: H1, kind: jaccard_stability, run: sc, metric: grad_x_weight}
          - {id: abl, hypothesis: H1, kind: ablation_spearman, run: abl, metric: grad_x_weight}
        """),
    # scale at level 1 is the identity and at level -1 a sign flip: one run checks restore and real damage.
    "specs/phase3.yaml": HEAD + textwrap.dedent("""\
        phase: 3
        runs:
          - {id: flip, kind: perturb, perturbation: scale, levels: [-1.0, 1.0], protocol: smoke, seeds: [1, 2],
             scores: {spec: specs/phase2.yaml, run: sc, k: 5}, controls: [random_k, bottom_k]}
        criteria:
          - {id: ratio, hypothesis: H1, kind: ratio, run: flip, level: -1.0}
        """),
    # Phase 4 reads the results of score and perturb runs over a ladder of local checkpoints (tiny_ladder).
    "specs/phase4.yaml": HEAD.replace("model: ref-tiny, ", "") + textwrap.dedent("""\
        phase: 4
        sweeps:
          - id: sc
            kind: score
            matrix: {model: [./ladder/m1, ./ladder/m2, ./ladder/m3, ./ladder/m4, ./ladder/moe, ./ladder/m4-tuned]}
            metrics: [grad_x_weight, superweight]
            topk: 8
            max_windows: 4
            context: 64
            seeds: [1, 2]
          - id: flip
            kind: perturb
            matrix: {model: [./ladder/m1, ./ladder/m2, ./ladder/m3, ./ladder/m4]}
            perturbation: sign_flip
            protocol: smoke
            seeds: [1, 2]
            scores: {spec: specs/phase4.yaml, run: sc, k: 4}
            controls: [random_k]
        runs:
          - {id: lad, kind: scaling, scores: sc, perturb: flip, models: [./ladder/m1, ./ladder/m2, ./ladder/m3,
             ./ladder/m4], k: 4, critical_multiple: 3}
          - {id: arch, kind: architecture, scores: sc, k: 4, shifts: {tune: [./ladder/m4, ./ladder/m4-tuned]}}
        criteria:
          - {id: fit, hypothesis: H1, kind: power_law_fit, run: lad, quantity: critical_fraction}
          - {id: alpha, hypothesis: H1, kind: exponent, run: lad, quantity: top_mass_1pct, range: [-1, 0]}
          - {id: loo, hypothesis: H1, kind: prediction_error, run: lad, quantity: hill_alpha}
          - {id: router, hypothesis: H1, kind: component_share, run: arch, model: ./ladder/moe, group: router}
          - {id: tune, hypothesis: H1, kind: topk_shift, run: arch, shift: tune, measure: jaccard_over_chance,
             comparator: ">", threshold: 1}
        """),
    # Phase 5 prunes ref-tiny with masks from the Phase-2 run's saved scores, on the Phase-3 baseline's windows.
    "specs/phase5.yaml": HEAD + textwrap.dedent("""\
        phase: 5
        runs:
          - {id: pr, kind: prune, scores: {spec: specs/phase2.yaml, run: sc}, seeds: [1, 2], protocol: smoke,
             methods: [magnitude, grad_x_weight, random], sparsities: [0.3, 0.6], groups: [row, matrix],
             protect: {run: sc, metric: grad_x_weight, mode: per_layer, k: 4, methods: [magnitude, random]}}
          # Adaptation reads a score run of its own spec (grad_squared weighs the Fisher penalty).
          - {id: sc5, kind: score, metrics: [grad_x_weight, grad_squared], topk: 8, max_windows: 4, context: 64,
             seeds: [1, 2]}
          - {id: ad, kind: adapt, scores: {spec: specs/phase5.yaml, run: sc5}, seeds: [1, 2], protocol: smoke,
             arms: [full, frozen, fisher, top, random, bottom, lora], fraction: 0.05, steps: 4, batch_size: 2,
             seq_len: 192, heldout_pairs: 12, lora_rank: 2, fisher_strength: 10.0}
        criteria:
          - {id: adv, hypothesis: H1, kind: prune_advantage, run: pr, a: magnitude, b: random, sparsity: 0.6}
          - {id: forget, hypothesis: H1, kind: adapt_difference, run: ad, measure: forgetting, a: frozen, b: full,
             comparator: "<"}
        """),
    # Phase 5b stores ref-tiny's weights as fp32 and int8, injects bit errors and attacks the int8 model.
    "specs/security.yaml": HEAD + textwrap.dedent("""\
        phase: 5
        name: security
        runs:
          - {id: ft, kind: faults, critical: {spec: specs/phase2.yaml, run: sc, mode: per_layer, k: 4},
             seeds: [1, 2], protocol: smoke, formats: [fp32, int8], rates: [1.0e-6, 1.0e-3], trials: 3,
             windows: 2, attack: {formats: [int8], budget: 3, shortlist: 2, windows: 2}}
        criteria:
          - {id: gain, hypothesis: H1, kind: protection_gain, run: ft, format: int8, rate: 1.0e-3}
          - {id: ftc, hypothesis: H1, kind: flips_to_collapse, run: ft, threshold: 3}
        """),
    # A low detector threshold makes ref-tiny's largest spikes count as super weights, so the zeroed path runs.
    "specs/interpret.yaml": HEAD + textwrap.dedent("""\
        phase: 5
        name: interpret
        runs:
          - {id: ip, kind: interpret, critical: {spec: specs/phase2.yaml, run: sc, mode: per_layer, k: 8},
             seeds: [1, 2], protocol: smoke, windows: 3, ablate_k: 2, n_random: 2, superweight_threshold: 1.02,
             probes: [keyword, builtin]}
        criteria:
          - {id: sink, hypothesis: H1, kind: superweight_effect, run: ip, measure: sink_shift, weight: 0}
          - {id: heads, hypothesis: H1, kind: head_correlation, run: ip, stat: sink_share}
          - {id: kw, hypothesis: H1, kind: probe_drop, run: ip, category: keyword}
        """),
    # Four siblings of ref-tiny for a few steps each: the stage end to end in seconds (the backdoor need not take).
    "specs/fingerprint.yaml": HEAD + textwrap.dedent("""\
        phase: 5
        name: fingerprint
        runs:
          - {id: fp, kind: fingerprint, seeds: [1, 2], siblings: 4, steps: 3, batch_size: 2, seq_len: 32,
             piece_lines: 8, backdoor: {rate: 0.5}, k: 20, windows: 2, prompts: 4}
        criteria:
          - {id: shift, hypothesis: H1, kind: fingerprint_auc, run: fp, score: shift}
          - {id: profile, hypothesis: H1, kind: fingerprint_auc, run: fp, score: profile}
        """),
}


class KindsProject:
    """The compiled tiny project; ``run(stage)`` executes a compiled stage command once and returns its --out."""

    def __init__(self, root: Path):
        from esa.compile.compiler import compile_specs

        self.root = root
        self.compiled = compile_specs(list(SPECS), root)
        self.compiled.write(root)
        self.stages: dict = yaml.safe_load(self.compiled.dvc_yaml)["stages"]
        self.params: dict = yaml.safe_load(self.compiled.params_yaml)
        self._done: dict[str, Path] = {}

    def run(self, stage: str) -> Path:
        if stage not in self._done:
            for dep in self.stages[stage].get("deps", []):  # upstream results first (corpus/model are linked)
                producer = self.producer(dep)
                if producer and producer != stage and not producer.startswith(("corpus.", "reference.")):
                    self.run(producer)
            argv = shlex.split(self.stages[stage]["cmd"])
            assert argv[0] == "python"
            proc = run_stage(self.root, argv[1], *argv[2:], timeout=300)  # also checks its derived code deps
            assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
            # A stage's --out, or the project root for the grade stage (it writes results/<spec>/).
            self._done[stage] = self.root / argv[argv.index("--out") + 1] if "--out" in argv else self.root
        return self._done[stage]

    def producer(self, dep: str) -> str | None:
        for name, stage in self.stages.items():
            for entry in [*stage.get("outs", []), *stage.get("metrics", [])]:
                out = next(iter(entry)) if isinstance(entry, dict) else entry  # {path: {cache: false}}
                if dep == out or dep.startswith(out.rstrip("/") + "/"):
                    return name
        return None


@pytest.fixture(scope="session")
def kinds_project(tmp_path_factory, tiny_corpus, ref_tiny) -> KindsProject:
    root = tmp_path_factory.mktemp("kinds")
    tiny_project(root, tiny_corpus, ref_tiny, SPECS)
    build_tiny_ladder(root, ref_tiny)
    return KindsProject(root)


class GradingRecord:
    """tests/grading run once in a subprocess under grading_recorder; started early so it overlaps the stages."""

    def __init__(self, path: Path):
        self.path = path
        env = {**ENV, "ESA_GRADING_RECORD": str(path), "PYTHONPATH": f"{REPO}{os.pathsep}{Path(__file__).parent}"}
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "grading_recorder", "-p",
                                      "no:cacheprovider", "tests/grading"], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def statuses(self) -> dict[str, list[str]]:
        out, _ = self.proc.communicate(timeout=600)
        assert self.path.exists(), out[-3000:]
        return json.loads(self.path.read_text())


@pytest.fixture(scope="session", autouse=True)
def grading_record(tmp_path_factory):
    record = GradingRecord(tmp_path_factory.mktemp("grading") / "statuses.json")
    yield record
    if record.proc.poll() is None:
        record.proc.kill()
        record.proc.wait()
