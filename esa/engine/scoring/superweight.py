"""Data-free super weight detection (Yu et al. 2024, "The Super Weight in Large Language Models").

One forward pass on a short fixed prompt. A super weight in layer l's MLP down projection (``down_proj``,
``dense_4h_to_h``, ``mlp.c_proj``, ``fc2``, an expert's slice; see ``down_projections``) multiplies a massive
input activation (in one input channel) into a massive output activation (in one output channel). Each
projection's spike ratio is max|act| / p99.9(|act|) over all (token, channel) entries; a candidate is flagged when
both the input and the output ratios exceed the threshold. Every projection's ratios are kept, so "none found"
comes with its evidence. The p99.9 of a tensor with fewer than ~1000 entries is close to its maximum, so such
ratios say little: the prompt should give tokens × channels well above 1000 (a routed expert sees only the
tokens sent to it).

A candidate's (row, col) is the stored layout of its weight matrix, as everywhere else: (output, input) channel
for nn.Linear and packed experts, (input, output) for GPT-2's Conv1D and transposed packed experts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from esa.engine.scoring.down_projections import capture, down_projections

SUPERWEIGHT_PROMPT = "Apple Inc. is a worldwide tech company."
DEFAULT_THRESHOLD = 50.0
QUANTILE = 0.999


@dataclass(frozen=True)
class LayerSpikes:
    layer: int
    module: str
    n_entries: int  # tokens × channels of the input (the output has tokens × hidden)
    input_max: float
    input_p999: float
    input_ratio: float
    input_channel: int
    input_token: int
    output_max: float
    output_p999: float
    output_ratio: float
    output_channel: int
    output_token: int
    expert: int | None = None  # routed expert, for MoE layers


@dataclass(frozen=True)
class SuperweightCandidate:
    layer: int
    module: str
    param_name: str
    row: int  # stored layout: the output channel for nn.Linear, the input channel for Conv1D
    col: int  # stored layout: the input channel for nn.Linear, the output channel for Conv1D
    weight_value: float
    input_value: float
    output_value: float
    input_ratio: float
    output_ratio: float
    # W · x[token, input channel] / y[token, output channel] at the output spike's token: share of the spike this
    # weight makes.
    contribution: float
    expert: int | None = None  # routed expert: the weight is slice ``expert`` of a packed parameter
    input_channel: int | None = None
    output_channel: int | None = None


@dataclass
class SuperweightReport:
    threshold: float
    n_tokens: int
    layers: list[LayerSpikes] = field(default_factory=list)
    candidates: list[SuperweightCandidate] = field(default_factory=list)
    note: str = ""

    @property
    def found(self) -> bool:
        return bool(self.candidates)

    def summary(self) -> str:
        if not self.layers:
            return f"no MLP down projection seen: detector not applicable ({self.note})"
        best_in = max(self.layers, key=lambda s: s.input_ratio)
        best_out = max(self.layers, key=lambda s: s.output_ratio)
        seen = (f"largest input ratio {best_in.input_ratio:.1f} (layer {best_in.layer}), largest output ratio "
                f"{best_out.output_ratio:.1f} (layer {best_out.layer}), threshold {self.threshold:g}")
        if not self.found:
            return f"none found over {len(self.layers)} layers: {seen}"
        where = ", ".join(f"layer {c.layer}{'' if c.expert is None else f' expert {c.expert}'} ({c.row}, {c.col})"
                          for c in self.candidates)
        return f"{len(self.candidates)} found: {where}; {seen}"

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "n_tokens": self.n_tokens, "found": self.found,
                "summary": self.summary(), "note": self.note,
                "candidates": [asdict(c) for c in self.candidates], "layers": [asdict(s) for s in self.layers]}


def quantile_abs(x: torch.Tensor, q: float = QUANTILE) -> float:
    """Linear-interpolated quantile of |x| (as torch.quantile), from a top-k so any size works."""
    flat = x.detach().abs().flatten().float()
    n = flat.numel()
    pos = q * (n - 1)
    lo = math.floor(pos)
    k = n - lo  # the values at ascending ranks lo and lo+1 are the k-th and (k-1)-th largest
    top = torch.topk(flat, k).values
    low = float(top[k - 1])
    high = float(top[k - 2]) if k >= 2 else low
    return low + (pos - lo) * (high - low)


def _spike(act: torch.Tensor) -> tuple[float, float, float, int, int]:
    """(max, p99.9, ratio, channel, token) of |act| over a (tokens, channels) matrix."""
    a = act.detach().float().abs()
    flat_index = int(torch.argmax(a))
    token, channel = divmod(flat_index, a.shape[1])
    peak = float(a[token, channel])
    p999 = quantile_abs(a)
    ratio = peak / p999 if p999 > 0 else math.inf
    return peak, p999, ratio, channel, token


def prompt_ids(tokenizer, text: str = SUPERWEIGHT_PROMPT) -> torch.Tensor:
    return torch.tensor(tokenizer(text, add_special_tokens=True)["input_ids"], dtype=torch.long)


@torch.no_grad()
def detect_superweights(model: torch.nn.Module, input_ids: torch.Tensor, *,
                        threshold: float = DEFAULT_THRESHOLD) -> SuperweightReport:
    """One forward pass over ``input_ids`` (one sequence), watching every MLP down projection."""
    ids = input_ids.reshape(1, -1).to(next(model.parameters()).device)
    report = SuperweightReport(threshold=threshold, n_tokens=ids.shape[1])
    projections = down_projections(model)
    if not projections:
        report.note = "the model has no MLP down projection the detector knows (see down_projections)"
        return report
    captured = capture(model, projections, ids)
    idle = [p for p in projections if p.key not in captured]
    if idle and len(idle) == sum(p.packed for p in projections):
        report.note = (f"no routed expert was seen ({len(idle)} packed slices): their implementation runs no "
                       "per-expert linear/matmul the detector can watch")
    elif idle:
        report.note = f"{len(idle)} routed expert(s) received no token of the prompt, e.g. {idle[0].key}"
    for proj in projections:
        if proj.key not in captured:
            continue
        x, y = captured[proj.key]
        in_max, in_p, in_ratio, in_ch, in_tok = _spike(x)
        out_max, out_p, out_ratio, out_ch, out_tok = _spike(y)
        report.layers.append(LayerSpikes(proj.layer, proj.module, x.numel(), in_max, in_p, in_ratio, in_ch, in_tok,
                                         out_max, out_p, out_ratio, out_ch, out_tok, proj.expert))
        if in_ratio > threshold and out_ratio > threshold:
            row, col = proj.stored(out_ch, in_ch)
            w = float(proj.weight()[row, col])
            y_spike = float(y[out_tok, out_ch])
            part = w * float(x[out_tok, in_ch])
            report.candidates.append(SuperweightCandidate(
                proj.layer, proj.module, proj.param_name, row, col, w, float(x[in_tok, in_ch]), y_spike, in_ratio,
                out_ratio, part / y_spike if y_spike else math.nan, proj.expert, in_ch, out_ch))
    return report


def superweight_scores(report: SuperweightReport, params: list[tuple[str, torch.nn.Parameter]],
                       model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Per scored parameter holding a candidate: its output spike ratio at (row, col) (of the candidate's expert
    slice for packed experts), zeros elsewhere.

    Parameters are matched by identity with the detected projections' weights, so any naming of ``params`` works.
    """
    by_name = {p.param_name: p.parameter for p in down_projections(model)}
    scores: dict[str, torch.Tensor] = {}
    for cand in report.candidates:
        weight = by_name[cand.param_name]
        for name, p in params:
            if p is weight:
                score = scores.setdefault(name, torch.zeros(p.shape, dtype=torch.float32, device=p.device))
                index = (cand.row, cand.col) if p.dim() == 2 else (cand.expert, cand.row, cand.col)
                score[index] = cand.output_ratio
    return scores
