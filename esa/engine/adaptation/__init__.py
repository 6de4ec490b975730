"""Adapting a model while protecting, or training only, its critical weights (Phase 5).

``selection`` picks the top, bottom or a random fraction of every scored matrix (matched counts); ``training``
continues training a copy with masks (only these entries train / these entries are frozen) and an optional
Fisher penalty (``penalty``); ``lora`` is the low-rank-adapter arm; ``data`` splits the shifted domain into
document-disjoint parts and builds the batch losses.
"""

from esa.engine.adaptation.data import doc_parts, domain_parts, domain_split, pair_loss, text_loss
from esa.engine.adaptation.lora import lora_model, lora_parameter_count, lora_targets, merged
from esa.engine.adaptation.penalty import FisherPenalty, Penalty
from esa.engine.adaptation.selection import (WHICH, Which, count_selected, critical_masks, select,
                                             selected_fraction, target_score)
from esa.engine.adaptation.training import AdaptResult, LossFn, Masks, adapt

__all__ = ["AdaptResult", "FisherPenalty", "LossFn", "Masks", "Penalty", "WHICH", "Which", "adapt",
           "count_selected", "critical_masks", "doc_parts", "domain_parts", "domain_split", "lora_model",
           "lora_parameter_count", "lora_targets", "merged", "pair_loss", "select", "selected_fraction",
           "target_score", "text_loss"]
