"""Phase-1 engine: corpus, reference models, sliding-window evaluation."""
