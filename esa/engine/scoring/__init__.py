"""Scoring: sensitivity metrics, the passes computing them, top-k selection, ablation checks."""
