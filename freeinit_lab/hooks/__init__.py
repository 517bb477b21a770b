"""Reaching into a diffusers pipeline: latent layouts, reversible patching, reading pipeline outputs."""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, submodules=["layouts"])
