"""The zoo section of a Phase-1 page: model cards from model folders, the table, curves and base vs instruct."""

from __future__ import annotations

import json

from esa.report import zoo


def _model(root, name, manifest, log):
    folder = root / "models" / name
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "train_log.json").write_text(json.dumps(log))


def _project(tmp_path):
    config = {"hidden_size": 32, "num_layers": 2, "intermediate_size": 96, "batch_size": 8, "seq_len": 256}
    _model(tmp_path, "ref-a", {"architecture": "llama", "n_params": 300_000, "n_params_non_embedding": 27_000,
                               "n_params_active_non_embedding": 27_000},
           {"config": config, "loss_curve": [{"step": 10, "loss": 6.0}, {"step": 20, "loss": 5.0}],
            "train_tokens_seen": 40_960, "wall_time_s": 120, "final_train_loss": 5.0, "heldout_loss": 5.2})
    _model(tmp_path, "ref-a-instruct", {"architecture": "llama", "n_params": 300_000},
           {"base": "ref-a", "config": {"batch_size": 4, "seq_len": 128}, "loss_curve": [{"step": 5, "loss": 3.0}],
            "train_pairs": 900, "heldout_pairs": 128,
            "base_heldout": {"response_loss": 2.5, "text_loss": 3.0},
            "instruct_heldout": {"response_loss": 1.9, "text_loss": 3.1}})
    summary = {"runs": [
        {"run": "standard-ref-a", "model": "ref-a", "protocol": "standard", "ppl_mean": 41.5},
        {"run": "smoke-ref-a", "model": "ref-a", "protocol": "smoke", "ppl_mean": 45.0},
        {"run": "standard-ref-a-instruct", "model": "ref-a-instruct", "protocol": "standard", "ppl_mean": 43.0},
        {"run": "standard-hub", "model": "org/model", "protocol": "standard", "ppl_mean": 12.0},
    ]}
    return summary


def test_cards_follow_the_summary_once_per_model(tmp_path):
    cards = zoo.model_cards(tmp_path, _project(tmp_path))
    assert [c["name"] for c in cards] == ["ref-a", "ref-a-instruct", "org/model"]
    assert cards[0]["run"]["protocol"] == "standard" and cards[2]["log"] == {} and cards[2]["manifest"] == {}


def test_table_curves_and_instruct_comparison(tmp_path):
    cards = zoo.model_cards(tmp_path, _project(tmp_path))
    frame = zoo.zoo_frame(cards)
    row = frame.iloc[0]
    assert row["kind"] == "llama" and row["hidden / layers / MLP"] == "32 / 2 / 96"
    assert row["non-embedding"] == "27k" and row["train time"] == "2.0 min"
    assert frame.iloc[1]["kind"] == "instruct (llama)"
    curves = zoo.curves_frame(cards)
    # Tokens seen = step × batch × sequence length, per model's own recipe.
    assert curves[curves.model == "ref-a"].tokens.tolist() == [10 * 8 * 256, 20 * 8 * 256]
    assert curves[curves.model == "ref-a-instruct"].stage.tolist() == ["fine-tune"]
    table = zoo.instruct_table(cards)
    assert "2.5 → 1.9" in table and "900 / 128" in table
    assert zoo.curves_chart(cards) is not None


def test_no_model_folders_no_curves_no_instruct(tmp_path):
    cards = zoo.model_cards(tmp_path, {"runs": [{"run": "r", "model": "org/m", "protocol": "smoke"}]})
    assert zoo.curves_chart(cards) is None and zoo.instruct_table(cards) is None


def test_packaged_models_state_their_provenance(tmp_path):
    _model(tmp_path, "real", {"architecture": "llama", "n_params": 134_515_008, "gguf_sha256": "ab" * 32,
                              "gguf_file": "m.Q4_1.gguf", "gguf_bytes": 98_362_432, "gguf_file_type": "MOSTLY_Q4_1",
                              "package": "llm-x", "package_version": "0.1.2", "gguf_version": "0.19.0",
                              "weights": "dequantized from MOSTLY_Q4_1 to float32"}, {})
    cards = zoo.model_cards(tmp_path, {"runs": [{"run": "r", "model": "real", "protocol": "compact"}]})
    assert zoo.zoo_frame(cards).iloc[0]["kind"] == "packaged llama, from MOSTLY_Q4_1"
    note = zoo.packaged_note(cards)
    assert "llm-x 0.1.2" in note and "abababababababab" in note and "98 MB" in note
    assert "dequantized from MOSTLY_Q4_1 to float32" in note
    assert zoo.packaged_note(zoo.model_cards(tmp_path, _project(tmp_path))) is None
