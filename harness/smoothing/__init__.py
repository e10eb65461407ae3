"""Diffusion Denoised Smoothing: timestep rules, variants, fusion."""
