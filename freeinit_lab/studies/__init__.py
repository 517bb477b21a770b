"""The measurements behind the notebooks: evidence, refinement, the cutoff map, strategies, the FreeInit decomposition."""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, submodules=["cutoff_map", "decomposition", "evidence", "refinement", "strategies"])
