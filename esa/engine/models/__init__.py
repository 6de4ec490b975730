"""Models: loading (local folder or hub id), the embedded reference models, weight targets."""
