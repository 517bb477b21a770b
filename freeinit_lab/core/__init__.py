"""Tensor kernels and their labelled wrappers: frequency filters and mixes, bands, noise schedules, band SNR, dims.

Depends on torch, numpy and (for the labelled results) xarray only; every other layer builds on this one.
"""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, submodules=["controls", "dims", "schedules", "snr", "spectral"])
