"""A super weight and the massive activation it makes (Yu et al. 2024; Sun et al. 2024, "Massive Activations").

A super weight in layer l's down projection writes one residual-stream dimension; the activation it makes there
is carried by the residual connection through every later layer, and attention heads use it to park probability
on the first token (an attention sink). For one prompt this module reports, per decoder layer, how massive that
dimension is and the attention-sink mass, with the weight in place and with it zeroed; ``zeroed`` restores the
weight bit for bit and proves it by checksum, so a caller can wrap its own evaluation (perplexity) in it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

import pandas as pd
import torch

from esa.engine.interpret.attention import sink_share
from esa.engine.interpret.forward import forward_pass
from esa.engine.models.targets import component_of, layer_of
from esa.engine.perturbation.apply import Applied, parameters, perturbed
from esa.engine.perturbation.controls import matrix_geometry
from esa.engine.scoring.superweight import SuperweightCandidate

CONDITIONS = ("baseline", "zeroed")


@dataclass(frozen=True)
class WeightRef:
    """One weight in its stored layout, and the residual-stream dimension it writes.

    ``dim`` defaults to ``row``: the output channel of an nn.Linear (a Conv1D stores (in, out), so there the
    detector's ``output_channel`` is the dimension).
    """

    param_name: str
    row: int
    col: int
    expert: int | None = None
    dim: int | None = None

    @classmethod
    def of(cls, candidate: SuperweightCandidate) -> "WeightRef":
        return cls(candidate.param_name, candidate.row, candidate.col, candidate.expert, candidate.output_channel)

    @property
    def channel(self) -> int:
        return self.row if self.dim is None else self.dim


def _selection(model: torch.nn.Module, ref: WeightRef) -> pd.DataFrame:
    """The one weight as a selection ``esa.engine.perturbation.apply`` understands."""
    param = parameters(model).get(ref.param_name)
    if param is None:
        raise KeyError(f"the model has no parameter {ref.param_name}")
    rows, cols, offset = matrix_geometry(param, ref.expert)
    if not (0 <= ref.row < rows and 0 <= ref.col < cols):
        raise IndexError(f"{ref.param_name}: ({ref.row}, {ref.col}) is outside its ({rows}, {cols}) matrix")
    return pd.DataFrame({"tensor": [ref.param_name], "layer": [layer_of(ref.param_name)],
                         "component": [component_of(ref.param_name)], "expert": pd.array([ref.expert], "Int64"),
                         "row": [ref.row], "col": [ref.col], "flat_index": [offset + ref.row * cols + ref.col]})


@contextmanager
def zeroed(model: torch.nn.Module, param_name: str, row: int, col: int, *,
           expert: int | None = None) -> Iterator[Applied]:
    """Zero one weight in place; on every exit write its bits back and verify the tensor by checksum."""
    with perturbed(model, _selection(model, WeightRef(param_name, row, col, expert)), "zero") as applied:
        yield applied


@dataclass(frozen=True)
class LayerActivity:
    """The residual stream after one decoder layer, watched at one dimension."""

    condition: str
    layer: int
    dim: int
    token: int  # where |residual[:, dim]| is largest
    value: float  # residual[token, dim]
    abs_value: float
    other_max_abs: float  # the largest |residual| over every other dimension and token
    ratio: float  # abs_value / other_max_abs: above 1 the dimension dominates the stream
    median_abs: float  # median |residual| over all tokens and dimensions
    ratio_to_median: float
    sink_share: float  # attention on token 0, mean over heads and queries ≥ 1


def _divide(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else math.nan)


def layer_activity(condition: str, layer: int, residual: torch.Tensor, dim: int, sink: float) -> LayerActivity:
    """Summarise one layer's residual [T, D] (one sequence) at ``dim``."""
    h = residual.reshape(-1, residual.shape[-1]).double()
    column = h[:, dim].abs()
    token = int(torch.argmax(column))
    others = torch.cat([h[:, :dim], h[:, dim + 1:]], dim=1).abs()
    other_max = float(others.max()) if others.numel() else 0.0
    median = float(h.abs().flatten().median())
    peak = float(column[token])
    return LayerActivity(condition, layer, dim, token, float(h[token, dim]), peak, other_max,
                         _divide(peak, other_max), median, _divide(peak, median), sink)


def _activities(model: torch.nn.Module, ids: torch.Tensor, dim: int, condition: str) -> list[LayerActivity]:
    result = forward_pass(model, ids)
    return [layer_activity(condition, i, r[0], dim, sink_share(a))
            for i, (r, a) in enumerate(zip(result.residuals, result.attentions or []))]


def massive_activations(model: torch.nn.Module, input_ids: torch.Tensor,
                        weight: WeightRef | SuperweightCandidate) -> pd.DataFrame:
    """Per decoder layer and condition (``baseline``, ``zeroed``): the residual stream at the weight's dimension
    and the attention-sink mass, for one sequence ``input_ids`` ([T] or [1, T], T ≥ 2).

    Columns are ``LayerActivity``'s fields, plus the weight's ``param_name``, ``row``, ``col`` and ``expert``.
    The weight is restored bit for bit (checksum-verified) before this returns, also on an error.
    """
    ref = WeightRef.of(weight) if isinstance(weight, SuperweightCandidate) else weight
    ids = input_ids.reshape(1, -1)
    if ids.shape[1] < 2:
        raise ValueError("the prompt needs at least 2 tokens: the sink share averages queries at positions ≥ 1")
    rows = _activities(model, ids, ref.channel, "baseline")
    with zeroed(model, ref.param_name, ref.row, ref.col, expert=ref.expert):
        rows += _activities(model, ids, ref.channel, "zeroed")
    frame = pd.DataFrame([asdict(r) for r in rows])
    return frame.assign(param_name=ref.param_name, row=ref.row, col=ref.col,
                        expert=pd.array([ref.expert] * len(frame), "Int64"))


def massive_drop(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per layer: baseline and zeroed ratio and sink share side by side, and the ratio's fall
    (baseline / zeroed)."""
    wide = frame.pivot(index="layer", columns="condition", values=["abs_value", "ratio", "sink_share"])
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    wide["ratio_fall"] = [_divide(a, b) for a, b in zip(wide["ratio_baseline"], wide["ratio_zeroed"])]
    return wide.reset_index()


__all__ = ["CONDITIONS", "LayerActivity", "WeightRef", "layer_activity", "massive_activations", "massive_drop",
           "zeroed"]
