"""The model zoo on a Phase-1 page: what each evaluated model is, how it trained, and what it scores held out.

Reads the model folders the shared stages wrote (models/<name>/manifest.json, train_log.json) for the models a
Phase-1 summary evaluated; hub models have no local folder and are listed from the summary alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from esa.report.tables import DASH, df_to_html, fmt

ZOO_NOTE = (
    "PPL is measured on the evaluation split (mean over seeds of the first run of each model); training loss and "
    "the calibration loss come from the model's training log. The ladder shares one tokenizer, one corpus and one "
    "recipe at a fixed token budget; the MoE's active parameters count the experts one token passes through. Train "
    "time is the wall time of the build that produced the model, which depends on what else the machine ran."
)
INSTRUCT_NOTE = (
    "Base and instruct share architecture, tokenizer and pre-training. Response loss is the NLL per response token "
    "on docstring → function pairs from calibration documents (disjoint from the fine-tuning pairs); text loss is "
    "plain next-token loss on calibration text, which shows what the fine-tune cost on ordinary source."
)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def model_cards(root: Path, summary: Mapping[str, Any] | None) -> list[dict]:
    """One card per model the summary evaluated, in run order: its manifest, training log and first run."""
    cards: dict[str, dict] = {}
    for run in (summary or {}).get("runs", []):
        name = str(run.get("model"))
        if name in cards:
            continue
        folder = Path(root) / "models" / name
        cards[name] = {"name": name, "run": run, "manifest": _read(folder / "manifest.json") or {},
                       "log": _read(folder / "train_log.json") or {}}
    return list(cards.values())


def _count(value: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return DASH
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:,.0f}k"


def _kind(manifest: Mapping[str, Any], log: Mapping[str, Any]) -> str:
    if log.get("base"):
        return f"instruct ({manifest.get('architecture', 'llama')})"
    if manifest.get("gguf_sha256"):  # dequantized from a packaged GGUF: say from what
        return f"packaged {manifest.get('architecture', '')}, from {manifest.get('gguf_file_type', 'GGUF')}".strip()
    return str(manifest.get("architecture") or DASH)


def _shape(manifest: Mapping[str, Any], log: Mapping[str, Any]) -> str:
    config = log.get("config") or {}
    if "hidden_size" not in config and "hidden_size" in manifest:
        return f"{manifest['hidden_size']} / {manifest['num_layers']} / {DASH}"
    if "hidden_size" not in config:
        return DASH
    shape = f"{config['hidden_size']} / {config['num_layers']} / {config['intermediate_size']}"
    if config.get("num_experts"):
        shape += f" × {config['num_experts']} experts (top-{config['experts_per_token']})"
    return shape


def zoo_frame(cards: list[dict]) -> pd.DataFrame:
    rows = []
    for card in cards:
        manifest, log, run = card["manifest"], card["log"], card["run"]
        kind = _kind(manifest, log)
        rows.append({
            "model": card["name"],
            "kind": kind,
            "hidden / layers / MLP": _shape(manifest, log),
            "params": _count(manifest.get("n_params")),
            "non-embedding": _count(manifest.get("n_params_non_embedding")),
            "active non-emb.": _count(manifest.get("n_params_active_non_embedding")),
            "train tokens": _count(log.get("train_tokens_seen")),
            "train time": f"{log['wall_time_s'] / 60:.1f} min" if log.get("wall_time_s") else DASH,
            "final train loss": fmt(log.get("final_train_loss")),
            "calibration loss": fmt(log.get("heldout_loss")),
            f"PPL ({run.get('protocol')})": fmt(run.get("ppl_mean")),
        })
    return pd.DataFrame(rows)


def zoo_table(cards: list[dict]) -> str:
    return df_to_html(zoo_frame(cards))


def instruct_table(cards: list[dict]) -> str | None:
    """Base vs instruct on held-out pairs and text, for every instruct model; None when there is none."""
    rows = []
    for card in cards:
        log = card["log"]
        if not log.get("base"):
            continue
        before, after = log.get("base_heldout") or {}, log.get("instruct_heldout") or {}
        rows.append({
            "model": card["name"], "base": log["base"],
            "pairs (train / held out)": f"{log.get('train_pairs')} / {log.get('heldout_pairs')}",
            "response loss (base → instruct)": f"{fmt(before.get('response_loss'))} → "
                                               f"{fmt(after.get('response_loss'))}",
            "text loss (base → instruct)": f"{fmt(before.get('text_loss'))} → {fmt(after.get('text_loss'))}",
        })
    return df_to_html(pd.DataFrame(rows)) if rows else None


def packaged_note(cards: list[dict]) -> str | None:
    """Where each packaged model came from: package and version, the GGUF file's sha256 and its quantization."""
    lines = []
    for card in cards:
        m = card["manifest"]
        if not m.get("gguf_sha256"):
            continue
        lines.append(f"- **{card['name']}**: `{m.get('gguf_file')}` from {m.get('package')} {m.get('package_version')} "
                     f"(sha256 `{m['gguf_sha256'][:16]}…`, {m.get('gguf_bytes', 0) / 1e6:.0f} MB, file type "
                     f"{m.get('gguf_file_type')}), {m.get('weights', 'converted')} with gguf {m.get('gguf_version')}. "
                     "Its numbers describe this dequantized model, not the original checkpoint.")
    return "\n".join(lines) if lines else None


def curves_frame(cards: list[dict]) -> pd.DataFrame:
    rows = []
    for card in cards:
        log = card["log"]
        config = log.get("config") or {}
        tokens_per_step = config.get("batch_size", 0) * config.get("seq_len", 0)
        for point in log.get("loss_curve") or []:
            rows.append({"model": card["name"], "step": point["step"], "loss": point["loss"],
                         "tokens": point["step"] * tokens_per_step, "stage": "fine-tune" if log.get("base")
                         else "pre-train"})
    return pd.DataFrame(rows, columns=["model", "step", "loss", "tokens", "stage"])


def curves_chart(cards: list[dict]) -> alt.Chart | None:
    """Training loss against tokens seen, one line per model; None when no card has a training log."""
    df = curves_frame(cards)
    if df.empty:
        return None
    order = [card["name"] for card in cards]
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X("tokens:Q", title="training tokens seen"),
            y=alt.Y("loss:Q", title="training loss (nats/token)", scale=alt.Scale(zero=False)),
            color=alt.Color("model:N", sort=order, title="model"),
            strokeDash=alt.StrokeDash("stage:N", title="stage"),
            tooltip=["model", "step", "loss"],
        )
        .properties(title="Training curves", width=520, height=280)
    )
