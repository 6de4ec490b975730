"""Compile specs into DVC stages: spec → plan (typed DAG) → literal dvc.yaml + params.yaml (see compiler.py)."""
