"""The experience layer: plotly figures, the ipywidgets cutoff explorer, key numbers and figures for reports."""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(__name__, submodules=["figures", "plots", "report", "widgets"])
