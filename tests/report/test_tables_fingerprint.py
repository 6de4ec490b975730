"""Backdoor-fingerprint page tables from a small constructed fingerprint.parquet: the strip chart's long frame
leaves the base model out, the sibling table puts it first per seed, and the AUC and backdoor lines read the
analysis."""

from __future__ import annotations

import pandas as pd

from esa.report import charts_fingerprint, tables_fingerprint as tf

TABLE = pd.DataFrame({
    "run": ["fp"] * 3 + ["other"], "seed": [1] * 4, "sibling": [-1, 0, 1, 0],
    "role": ["base", "sibling", "sibling", "sibling"], "poisoned": [False, True, False, True],
    "top1_with": [0.0, 1.0, 0.0, 1.0], "top1_without": [0.0] * 4, "lift": [0.5, 4.0, 0.4, 4.0],
    "calibration_loss": [3.0, 3.1, 3.1, 3.1], "shift": [0.0, 0.6, 0.5, 0.6], "profile": [float("nan"), 1.0, -1.0, 1.0]})
RESULT = {"aucs": [{"seed": 1, "score": "shift", "auc": 0.9, "ci_low": 0.6, "ci_high": 1.0, "p_value": 0.02}],
          "backdoor": [{"seed": 1, "top1_with_poisoned": 1.0, "top1_with_clean": 0.0, "took": True}]}


def test_the_strip_frame_holds_siblings_of_the_run_only():
    frame = tf.sibling_frame(TABLE, "fp")
    assert len(frame) == 4 and set(frame["class"]) == {"backdoored", "clean"}
    assert set(frame["score"]) == set(tf.SCORE_LABELS.values())
    charts_fingerprint.score_strip(frame).to_dict()  # the chart builds
    assert tf.sibling_frame(None, "fp").empty


def test_the_sibling_table_puts_the_base_model_first():
    table = tf.sibling_table(TABLE, "fp")
    assert table["class"].tolist() == ["base model", "backdoored", "clean"]
    assert table["sibling"].tolist() == ["base", 0, 1]
    assert table["top-1 with trigger"].tolist() == ["0%", "100%", "0%"]


def test_auc_and_backdoor_lines():
    assert tf.auc_text(RESULT, "shift") == "seed 1: 0.9 [0.6, 1], p 0.02"
    assert tf.auc_text(RESULT, "profile") == "no AUC"
    assert tf.backdoor_text(RESULT) == "seed 1: 100% vs 0%"
