"""Backdoor fingerprints: siblings of one base model fine-tuned with different seeds, some on text carrying a
trigger→target backdoor; does the sensitivity map on clean text tell the backdoored ones apart?

``poison`` plants the backdoor and draws held-out trigger prompts; ``siblings`` fine-tunes the copies and measures
attack success; ``fingerprint`` turns score maps into features; esa.analysis.sibling_auc gives leave-one-out scores and an AUC
with its CI.
"""

from esa.analysis.sibling_auc import AucResult, auc, auc_with_ci, centroid_score, loo_scores
from esa.engine.backdoor.fingerprint import matrix_profile, sensitivity_map, shift_score, top_k_set
from esa.engine.backdoor.poison import Backdoor, TriggerPair, insert_at_line, poison_texts, trigger_prompts
from esa.engine.backdoor.siblings import attack_success, finetune_sibling

__all__ = ["AucResult", "Backdoor", "TriggerPair", "attack_success", "auc", "auc_with_ci", "centroid_score",
           "finetune_sibling", "insert_at_line", "loo_scores", "matrix_profile", "poison_texts", "sensitivity_map",
           "shift_score", "top_k_set", "trigger_prompts"]
