"""The measurements behind the notebooks: evidence, refinement, the cutoff map, strategies, noise swaps, the FreeInit
decomposition."""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(
    __name__, submodules=["cutoff_map", "decomposition", "evidence", "noise_swap", "refinement", "strategies"]
)
