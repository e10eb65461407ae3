"""Experiment runners: items x methods x DDS variants x radii -> per-item rows -> tables."""
