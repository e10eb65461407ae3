"""Training recipes for the embedded world's models (deterministic from a seed and a thread count)."""
