"""Data: the stdlib corpus, the tokenizer, evaluation/calibration windows and microbatches."""
