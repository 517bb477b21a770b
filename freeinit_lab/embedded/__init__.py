"""The embedded default: the subjects world, procedural and real clips, the tiny video UNet, its pipeline, the demo."""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(
    __name__, submodules=["data", "demo", "models", "paths", "pipelines", "vae", "world"]
)
