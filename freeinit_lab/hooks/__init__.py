"""Reaching into a diffusers pipeline: latent layouts, reversible patching, reading pipeline outputs."""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(__name__, submodules=["events", "layouts", "outputs"])
