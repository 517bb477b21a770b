"""Tensor kernels and their labelled wrappers: frequency filters and mixes, bands, noise schedules, band SNR, dims,
FreeInit's reinitialisation step with its settings, and the initial latents of FreeInit's control arms.

Depends on torch, numpy and (for the labelled results) xarray only; every other layer builds on this one.
"""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(
    __name__, submodules=["controls", "dims", "reinit", "schedules", "snr", "spectral"]
)
