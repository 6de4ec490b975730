"""Phase-2 analyses on top-k artifacts (keys are (tensor, flat_index)): stability, overlap, tails, hotspots."""
