"""fvit-bench: do ViT explanations survive attacks, and does DDS make them faithful?

Convention used everywhere outside a model: images are float32 tensors in [0, 1] pixel space,
shape (B, 3, H, W); attack radii and smoothing noise levels are in the same [0, 1] pixel units.
"""

__version__ = "0.1.0"
