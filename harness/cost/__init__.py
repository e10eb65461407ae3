"""Compute cost of explanations: energy and CO2 (codecarbon, offline), time per image, cost tables."""
