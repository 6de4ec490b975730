"""Perturbation: the registry of in-place perturbations, controls, bit flips, restores."""
