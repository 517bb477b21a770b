"""The experience layer: plotly figures, the ipywidgets cutoff explorer, key numbers and figures for reports."""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, submodules=["plots", "report", "widgets"])
