"""FreeInit around any diffusers video pipeline: checks, the pass loop, the result."""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    submodules=["loop"],
    names={
        "FreeInitIteration": "loop",
        "FreeInitNoGapWarning": "loop",
        "FreeInitResult": "loop",
        "fast_sampling_steps": "loop",
        "freeinit": "loop",
    },
)
