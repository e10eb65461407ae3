"""Attacks in [0,1] pixel space (radii in the same units)."""

from harness.attacks.adaptive import adaptive_attack
from harness.attacks.pgd import check_radius, pgd_linf

__all__ = ["adaptive_attack", "check_radius", "pgd_linf"]
