"""FreeInit around any diffusers video pipeline: checks, the pass loop, the result."""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(
    __name__,
    submodules=["checks", "loop", "result"],
    names={
        "FreeInitIteration": "result",
        "FreeInitNoGapWarning": "checks",
        "FreeInitResult": "result",
        "FreeInitSettings": "loop",
        "fast_sampling_steps": "loop",
        "freeinit": "loop",
    },
)
