"""The measurements behind the notebooks: evidence, pass-by-pass refinement, the cutoff map, strategies."""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, submodules=["cutoff_map", "evidence", "refinement", "strategies"])
