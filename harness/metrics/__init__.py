"""Metrics: pure functions over tensors/arrays, no I/O.

segmentation (pixel accuracy, mIoU, mAP), perturbation (positive/negative tests, Chefer and Re AUCs),
faithfulness (FViT's top-k overlap, prediction agreement); `registry` names their units and directions.
"""
