"""Unstructured pruning: masks of the lowest-score weights, applied in place and restored bit-exactly."""
