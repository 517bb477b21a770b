"""Canonical dimension names, defined once.

Every labelled array freeinit_lab produces uses these names, so analysis helpers and plots never rely on
positional axes. Layout adapters map a pipeline's own tensor order onto them at capture time.
"""

from __future__ import annotations

#: A batch of videos in the canonical order.
VIDEO_DIMS: tuple[str, ...] = ("batch", "channel", "frame", "height", "width")
#: A record of latents captured along a sampling trajectory (probes, FreeInit iterations).
RECORD_DIMS: tuple[str, ...] = ("iteration", "step") + VIDEO_DIMS
#: The three spatio-temporal dims the spectral tools transform, in tensor order (..., frame, height, width).
SPATIOTEMPORAL_DIMS: tuple[str, ...] = ("frame", "height", "width")
#: Frequency dims of a transformed video (xrft convention: ``x`` -> ``freq_x``).
FREQ_DIMS: tuple[str, ...] = ("freq_frame", "freq_height", "freq_width")
#: The dim of radial frequency bands; coords ``band_lo`` and ``band_hi`` hold the band edges.
BAND_DIM = "band"
#: The dim of training timesteps.
TIMESTEP_DIM = "timestep"
