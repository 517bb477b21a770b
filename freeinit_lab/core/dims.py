"""Canonical dimension names, defined once.

Every labelled array freeinit_lab produces uses these names, so analysis helpers and plots never rely on
positional axes. Layout adapters map a pipeline's own tensor order onto them at capture time.
"""

from __future__ import annotations

#: A batch of videos in the canonical order.
VIDEO_DIMS: tuple[str, ...] = ("batch", "channel", "frame", "height", "width")
#: A record of latents captured along a sampling trajectory (probes, FreeInit iterations).
RECORD_DIMS: tuple[str, ...] = ("iteration", "step") + VIDEO_DIMS
#: A probe record of band powers (``LatentProbe(mode="band_power")``).
BAND_RECORD_DIMS: tuple[str, ...] = ("iteration", "step", "batch", "channel", "band")
#: One latent per FreeInit pass (:meth:`FreeInitResult.to_xarray`).
ITERATION_DIMS: tuple[str, ...] = ("iteration",) + VIDEO_DIMS
#: The three spatio-temporal dims the spectral tools transform, in tensor order (..., frame, height, width).
SPATIOTEMPORAL_DIMS: tuple[str, ...] = ("frame", "height", "width")
#: Frequency dims of a transformed video (xrft convention: ``x`` -> ``freq_x``).
FREQ_DIMS: tuple[str, ...] = ("freq_frame", "freq_height", "freq_width")
#: The dim of radial frequency bands; coords ``band_lo`` and ``band_hi`` hold the band edges.
BAND_DIM = "band"
#: The dim of training timesteps.
TIMESTEP_DIM = "timestep"


def band_coords(edges) -> dict:
    """The coordinates of a radial ``band`` dim, labelled the same way everywhere.

    ``band`` (0, 1, …), ``band_lo`` and ``band_hi`` (the inner and outer edge of each band) in normalised
    frequency: the radius of :func:`freeinit_lab.core.spectral.frequency_radius`, each axis's frequency being
    ``2·fftfreq`` (Nyquist = 1). Each value is ``(dims, values, attrs)`` with ``dims`` a tuple of dim names, as
    xarray and the zarr sink of ``LatentProbe(store=...)`` both take it.

    Parameters
    ----------
    edges : array-like
        ``num_bands + 1`` increasing band edges.
    """
    import numpy as np

    e = np.asarray(edges, dtype=np.float64)
    return {
        BAND_DIM: ((BAND_DIM,), np.arange(e.size - 1), {"long_name": "radial frequency band"}),
        "band_lo": ((BAND_DIM,), e[:-1], {"long_name": "band inner radius", "units": "normalised frequency"}),
        "band_hi": ((BAND_DIM,), e[1:], {"long_name": "band outer radius", "units": "normalised frequency"}),
    }
