"""Data-free super weight detection (Yu et al. 2024, "The Super Weight in Large Language Models").

One forward pass on a short fixed prompt. A super weight in layer l's ``mlp.down_proj`` multiplies a massive
input activation (down_proj input channel = col) into a massive output activation (output channel = row). Each
layer's spike ratio is max|act| / p99.9(|act|) over all (token, channel) entries; a candidate is flagged when both
the input and the output ratios exceed the threshold. Every layer's ratios are kept, so "none found" comes with
its evidence. The p99.9 of a tensor with fewer than ~1000 entries is close to its maximum, so such ratios say
little: the prompt should give tokens × channels well above 1000.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import torch

SUPERWEIGHT_PROMPT = "Apple Inc. is a worldwide tech company."
DEFAULT_THRESHOLD = 50.0
QUANTILE = 0.999
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


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


@dataclass(frozen=True)
class SuperweightCandidate:
    layer: int
    module: str
    param_name: str
    row: int  # down_proj output channel
    col: int  # down_proj input channel
    weight_value: float
    input_value: float
    output_value: float
    input_ratio: float
    output_ratio: float
    # W[row, col] · x[token, col] / y[token, row] at the output spike's token: share of the spike this weight makes.
    contribution: float


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
            return f"no mlp.down_proj nn.Linear found: detector not applicable ({self.note})"
        best_in = max(self.layers, key=lambda s: s.input_ratio)
        best_out = max(self.layers, key=lambda s: s.output_ratio)
        seen = (f"largest input ratio {best_in.input_ratio:.1f} (layer {best_in.layer}), largest output ratio "
                f"{best_out.output_ratio:.1f} (layer {best_out.layer}), threshold {self.threshold:g}")
        if not self.found:
            return f"none found over {len(self.layers)} layers: {seen}"
        where = ", ".join(f"layer {c.layer} ({c.row}, {c.col})" for c in self.candidates)
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


def down_proj_modules(model: torch.nn.Module) -> list[tuple[int, str, torch.nn.Linear]]:
    """(layer, module name, module) for every dense ``mlp.down_proj`` linear layer, in layer order."""
    found = []
    for name, module in model.named_modules():
        if name.endswith("mlp.down_proj") and isinstance(module, torch.nn.Linear):
            match = _LAYER.search(name)
            if match:
                found.append((int(match.group(1)), name, module))
    return sorted(found, key=lambda item: item[0])


def prompt_ids(tokenizer, text: str = SUPERWEIGHT_PROMPT) -> torch.Tensor:
    return torch.tensor(tokenizer(text, add_special_tokens=True)["input_ids"], dtype=torch.long)


@torch.no_grad()
def detect_superweights(model: torch.nn.Module, input_ids: torch.Tensor, *,
                        threshold: float = DEFAULT_THRESHOLD) -> SuperweightReport:
    """One forward pass over ``input_ids`` (one sequence) with hooks on each layer's down_proj."""
    ids = input_ids.reshape(1, -1).to(next(model.parameters()).device)
    report = SuperweightReport(threshold=threshold, n_tokens=ids.shape[1])
    modules = down_proj_modules(model)
    if not modules:
        report.note = "the model has no dense mlp.down_proj nn.Linear (e.g. packed MoE experts)"
        return report
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def make_hook(name: str):
        def hook(module, inputs, output):
            x = inputs[0]
            captured[name] = (x.reshape(-1, x.shape[-1]).detach(), output.reshape(-1, output.shape[-1]).detach())
        return hook

    handles = [module.register_forward_hook(make_hook(name)) for _, name, module in modules]
    was_training = model.training
    model.eval()
    try:
        model(input_ids=ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for layer, name, module in modules:
        x, y = captured[name]
        in_max, in_p, in_ratio, col, in_tok = _spike(x)
        out_max, out_p, out_ratio, row, out_tok = _spike(y)
        report.layers.append(LayerSpikes(layer, name, x.numel(), in_max, in_p, in_ratio, col, in_tok,
                                         out_max, out_p, out_ratio, row, out_tok))
        if in_ratio > threshold and out_ratio > threshold:
            w = float(module.weight[row, col])
            y_spike = float(y[out_tok, row])
            part = w * float(x[out_tok, col])
            report.candidates.append(SuperweightCandidate(
                layer, name, f"{name}.weight", row, col, w, float(x[in_tok, col]), y_spike, in_ratio, out_ratio,
                part / y_spike if y_spike else math.nan))
    return report


def superweight_scores(report: SuperweightReport, params: list[tuple[str, torch.nn.Parameter]],
                       model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Per scored down_proj weight holding a candidate: its output spike ratio at (row, col), zeros elsewhere.

    Parameters are matched by identity with the detected modules' weights, so any naming of ``params`` works.
    """
    by_module = {name: module for _, name, module in down_proj_modules(model)}
    scores: dict[str, torch.Tensor] = {}
    for cand in report.candidates:
        weight = by_module[cand.module].weight
        for name, p in params:
            if p is weight:
                score = scores.setdefault(name, torch.zeros(p.shape, dtype=torch.float32, device=p.device))
                score[cand.row, cand.col] = cand.output_ratio
    return scores
