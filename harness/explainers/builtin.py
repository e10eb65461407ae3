"""Importing this module registers every built-in explanation method."""

from harness.explainers import (  # noqa: F401
    attention,
    attribution_rollout,
    baselines,
    generic_attention,
    gradcam,
    lrp,
)

# The eight methods of docs/PROTOCOL.md section 3, by registry name.
BUILTIN_METHODS: tuple[str, ...] = (
    "raw_attention",
    "rollout",
    "attn_gradcam",
    "lrp",
    "partial_lrp",
    "transformer_attribution",
    "generic_attention",
    "attribution_rollout",
)
