"""Evaluation: per-window NLL, perplexity and accuracy of a model on windows."""
