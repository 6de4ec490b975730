"""Models: loading (local folder or hub id), the embedded reference models, packaged GGUF models, weight targets."""
