"""freeinit_lab: see and fix the initialization gap of video diffusion models."""

__version__ = "0.1.0"
