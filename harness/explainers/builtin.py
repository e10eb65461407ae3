"""Importing this module registers every built-in explanation method."""

from harness.explainers import (  # noqa: F401
    attention,
    attribution_rollout,
    generic_attention,
    gradcam,
    lrp,
)
