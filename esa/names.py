"""Names the spec, the engine and the pages share, each written once.

Spec literals are built from them (esa.spec.names); the engine checks at import that its registries implement
exactly these; pages and graders read the target lists from here. Torch-free.
"""

from __future__ import annotations


# Sensitivity metrics (computed by esa.engine.scoring.metrics; names listed here so specs validate without torch).
METRICS: dict[str, str] = {
    "grad_x_weight": "|w ⊙ ∂L/∂w|, first-order Taylor estimate of zeroing w",
    "grad_squared": "empirical Fisher diagonal from per-sequence gradients",
    "obd": "½·F_ii·w², Optimal Brain Damage saliency from the empirical Fisher",
    "act_mag": "|W_ij|·‖X_j‖₂ over calibration inputs (Wanda)",
    "hutchinson_diag": "Hutchinson estimate of the Hessian diagonal, Rademacher probes",
    "magnitude": "|w|",
    "superweight": "data-free down_proj activation-spike detector",
}

# Selection modes of a score run: top-k within every matrix, or over all scored weights at once.
MODES: tuple[str, ...] = ("per_layer", "global")

# In-place perturbations (implemented by esa.engine.perturbation.registry).
PERTURBATIONS: dict[str, str] = {
    "zero": "set the weights to 0",
    "sign_flip": "negate the weights",
    "scale": "multiply the weights by the level",
    "gauss_noise": "add Gaussian noise, σ = level × (|w| or the matrix std)",
    "bit_flip": "flip one bit of each weight's stored representation",
    "grad_step": "step along (or against) the calibration gradient",
    "correlated": "noise shared across a head or channel",
    "adaptive": "noise scaled by each weight's sensitivity score",
}

# Weight sets a perturbation is applied to: the super set first, then the controls it is compared with.
TARGETS: tuple[str, ...] = ("super", "random_k", "random_matched", "bottom_k")
CONTROLS: tuple[str, ...] = TARGETS[1:]
# The expected order of damage, most to least (random_matched sits beside random_k, so it is not in the chain).
HIERARCHY: tuple[str, ...] = ("super", "random_k", "bottom_k")


def check_implemented(what: str, implemented, listed) -> None:
    """Fail at import when an engine registry and the names here disagree (a spec could name what cannot run)."""
    if set(implemented) != set(listed):
        missing, extra = sorted(set(listed) - set(implemented)), sorted(set(implemented) - set(listed))
        raise RuntimeError(f"{what}: esa.registry lists {missing or 'nothing'} the engine lacks; the engine has "
                           f"{extra or 'nothing'} esa.registry does not list")

# Pruning methods → the saved score (scores/<metric>.safetensors of a score run) each ranks weights by; None when
# the score is computed when pruning (magnitude from the weight, random from a seeded generator). Implemented by
# esa.engine.pruning.masks.
PRUNING_METHODS: dict[str, str | None] = {
    "magnitude": None,
    "wanda": "act_mag",
    "grad_x_weight": "grad_x_weight",
    "grad_squared": "grad_squared",
    "obd": "obd",
    "random": None,
}
# Groups within which a pruning or selection count is exact: each output row (Wanda's comparison) or the matrix.
PRUNING_GROUPS: tuple[str, ...] = ("row", "matrix")
