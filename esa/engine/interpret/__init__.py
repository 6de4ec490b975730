"""Interpretability probes of critical weights: super weights and massive activations, attention heads, and
cloze probes of what a model knows, each with its weights zeroed in place and restored bit for bit."""
