"""Band-wise signal-to-noise ratio of noisy latents: the paper's first finding, measured.

Convention (ours; the paper's exact band definition and formula are not public, see ``shared/PAPER.md``):
ortho-normalised 3D FFT over (frame, height, width), so unit white noise has expected power 1 in every bin;
radial bands on the normalised frequency radius of the FreeInit filters (:func:`~freeinit_lab.spectral.band_masks`);
the SNR of band ``k`` at timestep ``t`` is

.. math::  \\mathrm{SNR}_k(t) = \\frac{a_t^2 \\sum_{f \\in k} |Z_0(f)|^2}{b_t^2 \\sum_{f \\in k} E|\\hat\\varepsilon(f)|^2}
           = \\frac{a_t^2 \\, P_k(z_0)}{b_t^2}

averaged over every leading dim (videos, channels) of the clean latents, reported in dB. A band with no signal
(zero-terminal-SNR schedules at ``T``, or a pure-noise inference latent) is ``-inf`` dB, not a fudge value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from .schedules import NoiseSchedule, get_schedule
from .spectral import _check_video, _resolve_edges, band_counts, band_power

__all__ = ["band_snr", "inference_band_snr", "initialization_gap", "reinit_band_composition", "SNR_CONVENTION"]

SNR_CONVENTION = (
    "ortho-normalised 3D FFT over (frame, height, width); radial bands on the normalised frequency radius "
    "(Nyquist = 1); band SNR = a_t^2 * mean_band|Z0|^2 / (b_t^2 * mean_band E|eps|^2), averaged over videos and "
    "channels; dB"
)


def _to_db(linear: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10 * np.log10(linear)


def _band_coords(shape3: tuple[int, ...], edges: np.ndarray, temporal_scale: float) -> dict:
    return {
        "band": np.arange(edges.size - 1),
        "band_lo": ("band", edges[:-1], {"long_name": "band inner radius", "units": "normalised frequency"}),
        "band_hi": ("band", edges[1:], {"long_name": "band outer radius", "units": "normalised frequency"}),
        "num_bins": ("band", band_counts(shape3, edges, temporal_scale=temporal_scale).astype(np.int64)),
    }


def _mean_band_power(x: torch.Tensor, edges: np.ndarray, temporal_scale: float) -> np.ndarray:
    power = band_power(x, edges=edges, temporal_scale=temporal_scale)
    return power.reshape(-1, power.shape[-1]).mean(0).cpu().numpy()


def band_snr(
    x0: torch.Tensor,
    scheduler: Any,
    num_bands: int = 6,
    *,
    edges: Sequence[float] | None = None,
    timesteps: Sequence[float] | None = None,
    method: str = "closed_form",
    num_samples: int = 4,
    generator: torch.Generator | None = None,
    temporal_scale: float = 1.0,
) -> xr.DataArray:
    """Band-wise SNR of the *training* noisy latent ``z_t = a_t z_0 + b_t eps`` built from clean latents.

    Parameters
    ----------
    x0
        Clean latents ``(..., frame, height, width)`` — e.g. VAE latents of real clips, ``(clip, channel, frame,
        height, width)``. Powers are averaged over all leading dims.
    scheduler
        A diffusers scheduler, its config, a pipeline or a :class:`~freeinit_lab.schedules.NoiseSchedule`.
    num_bands, edges, temporal_scale
        Band definition (see :func:`~freeinit_lab.spectral.band_masks`).
    timesteps
        Training timesteps to evaluate; default the whole training grid.
    method
        ``"closed_form"``: ``a_t^2 P_k(x0) / b_t^2`` with ONE FFT of ``x0`` for all timesteps (expected noise
        power is exactly 1 per bin). ``"monte_carlo"``: draws ``num_samples`` noise tensors ``eps`` like ``x0``
        and measures the band powers of the actually sampled parts of ``z_t``: ``P_k(a_t x0) / P_k(b_t eps)``
        (one FFT per draw serves all timesteps, since ``P_k(b_t eps) = b_t^2 P_k(eps)``). It agrees with the
        closed form within sampling error (relative standard error ``sqrt(1 / (num_bins * n))`` of the noise
        power, ``n`` the number of noise tensors × leading elements).
    num_samples, generator
        Monte-Carlo draws and their random generator (for determinism).

    Returns
    -------
    xarray.DataArray
        dims ``("timestep", "band")``, values in dB; coords ``band_lo``, ``band_hi``, ``num_bins`` per band and
        ``alpha`` (``a_t``), ``sigma`` (``b_t``), ``snr_db`` (whole-signal SNR of the schedule) per timestep.

    Examples
    --------
    >>> import torch, diffusers
    >>> sched = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    >>> x0 = torch.ones(1, 4, 8, 16, 16)  # a constant video: all power at DC
    >>> snr = band_snr(x0, sched, timesteps=[999])
    >>> # all power N = 8*16*16 = 2048 sits in the DC bin; band 0 holds 5 bins: 10 log10(2048/5 * a_T^2/b_T^2)
    >>> round(float(snr.sel(timestep=999, band=0)), 2)
    2.83
    """
    _check_video(x0, "x0")
    schedule: NoiseSchedule = get_schedule(scheduler)
    shape3 = tuple(x0.shape[-3:])
    edges_arr = _resolve_edges(shape3, edges, num_bands, temporal_scale)
    ts = schedule.timesteps if timesteps is None else np.atleast_1d(np.asarray(timesteps, dtype=np.float64))
    a, b = schedule.coefficients(ts)
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    if schedule.family == "ddpm":
        ts = ts.astype(np.int64)  # integer training timesteps label more readably
    signal = _mean_band_power(x0, edges_arr, temporal_scale)  # (K,)
    if method == "closed_form":
        noise = np.ones_like(signal)
    elif method == "monte_carlo":
        num_samples = int(num_samples)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1; got {num_samples}")
        acc = np.zeros_like(signal)
        for _ in range(num_samples):
            eps = torch.randn(x0.shape, generator=generator, dtype=torch.float32, device=x0.device)
            acc += _mean_band_power(eps, edges_arr, temporal_scale)
        noise = acc / num_samples
    else:
        raise ValueError(f"method must be 'closed_form' or 'monte_carlo'; got {method!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        linear = (a[:, None] ** 2 * signal[None, :]) / (b[:, None] ** 2 * noise[None, :])
    values = _to_db(linear)
    coords = {
        "timestep": ("timestep", ts, {"long_name": "training timestep"}),
        "alpha": ("timestep", a, {"long_name": "signal coefficient a_t"}),
        "sigma": ("timestep", b, {"long_name": "noise coefficient b_t"}),
        "snr_db": ("timestep", _to_db(a**2 / b**2), {"long_name": "schedule SNR a_t^2/b_t^2", "units": "dB"}),
        **_band_coords(shape3, edges_arr, temporal_scale),
    }
    return xr.DataArray(
        values,
        dims=("timestep", "band"),
        coords=coords,
        name="band_snr",
        attrs={
            "long_name": "band-wise SNR of the training noisy latent z_t",
            "units": "dB",
            "method": method,
            "convention": SNR_CONVENTION,
            "scheduler_class": schedule.scheduler_class,
            "schedule_family": schedule.family,
        },
    )


def inference_band_snr(
    signal: torch.Tensor | None,
    noise: torch.Tensor,
    num_bands: int = 6,
    *,
    edges: Sequence[float] | None = None,
    temporal_scale: float = 1.0,
) -> xr.DataArray:
    """Band-wise SNR of an *inference* initial latent ``z = signal + noise`` whose parts are known.

    Plain sampling starts from pure Gaussian noise: pass ``signal=None`` (or zeros) and every band is ``-inf`` dB.
    After a FreeInit reinitialisation the signal part is the low-passed ``a_T z_0`` and the noise part the rest
    (the FreeInit engine records both per iteration).

    Returns
    -------
    xarray.DataArray
        dims ``("band",)`` in dB, powers averaged over all leading dims; coords as :func:`band_snr`.
    """
    _check_video(noise, "noise")
    shape3 = tuple(noise.shape[-3:])
    edges_arr = _resolve_edges(shape3, edges, num_bands, temporal_scale)
    noise_power = _mean_band_power(noise, edges_arr, temporal_scale)
    if signal is None:
        signal_power = np.zeros_like(noise_power)
    else:
        _check_video(signal, "signal")
        if signal.shape != noise.shape:
            raise ValueError(f"signal {tuple(signal.shape)} and noise {tuple(noise.shape)} must have the same shape")
        signal_power = _mean_band_power(signal, edges_arr, temporal_scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = _to_db(signal_power / noise_power)
    return xr.DataArray(
        values,
        dims=("band",),
        coords=_band_coords(shape3, edges_arr, temporal_scale),
        name="band_snr",
        attrs={
            "long_name": "band-wise SNR of the inference initial latent",
            "units": "dB",
            "convention": SNR_CONVENTION,
        },
    )


def initialization_gap(
    x0: torch.Tensor,
    scheduler: Any,
    num_bands: int = 6,
    *,
    edges: Sequence[float] | None = None,
    temporal_scale: float = 1.0,
) -> xr.DataArray:
    """The initialization gap at the terminal timestep, band by band.

    Returns
    -------
    xarray.DataArray
        dims ``("band", "source")`` in dB with ``source = ["training z_T", "inference z_T"]``: the training
        noisy latent's band SNR at ``T`` (closed form) next to plain inference's pure-noise initial latent
        (``-inf`` dB: it carries no signal).
    """
    schedule = get_schedule(scheduler)
    train = band_snr(
        x0, schedule, num_bands, edges=edges, timesteps=[schedule.terminal_timestep], temporal_scale=temporal_scale
    ).isel(timestep=0, drop=True)
    infer = xr.full_like(train, -np.inf)
    out = xr.concat([train, infer], dim="source").transpose("band", "source")
    out = out.assign_coords(source=["training z_T", "inference z_T"])
    out.attrs.update(
        long_name=f"band SNR at the terminal timestep T={schedule.terminal_timestep:g}",
        units="dB",
        convention=SNR_CONVENTION,
        scheduler_class=schedule.scheduler_class,
        terminal_timestep=schedule.terminal_timestep,
    )
    out.name = "band_snr"
    return out


def reinit_band_composition(
    lowpass: torch.Tensor,
    num_bands: int = 6,
    *,
    edges: Sequence[float] | None = None,
    diffused_power: Sequence[float] | None = None,
) -> xr.Dataset:
    """Where each band of FreeInit's reinitialised latent ``z'_T = H·z_T + (1 − H)·eta`` gets its power from.

    Per bin the mix has power ``H^2 P_z + (1 - H)^2`` (``P_z`` the diffused latent's power per bin, fresh noise
    has 1), so band ``k`` takes the share ``sum_k H^2 P_z / sum_k (H^2 P_z + (1 - H)^2)`` from the diffused
    latent. With a soft mask the mix's variance ``H^2 + (1 - H)^2`` is below 1 between the pass and stop bands
    (the "variance decay" FreqPrior, arXiv 2502.03496, criticises).

    Parameters
    ----------
    lowpass
        Mask ``H`` in FFT order (``(..., F, H, W)``).
    diffused_power
        Power per bin of ``z_T`` in each band (e.g. ``10**(band_snr/10) * b_T^2 + b_T^2``); default 1 (white,
        unit variance, which ``z_T`` nearly is at the last training step).

    Returns
    -------
    xarray.Dataset
        ``from_diffused``, ``from_noise`` (shares summing to 1) and ``mix_variance`` (mean power per bin of the
        mix) over ``band``.
    """
    mask = lowpass.reshape(-1, *lowpass.shape[-3:])[0].detach().cpu().double()
    shape3 = tuple(mask.shape)
    edges_arr = _resolve_edges(shape3, edges, num_bands, 1.0)
    from .spectral import band_masks

    masks = band_masks(shape3, edges=edges_arr)
    p_z = np.ones(masks.shape[0]) if diffused_power is None else np.asarray(diffused_power, dtype=np.float64)
    h2 = mask**2
    l2 = (1 - mask) ** 2
    counts = masks.sum(dim=(1, 2, 3)).double()
    h2_mean = np.array([(h2[m]).sum().item() for m in masks]) / counts.numpy()
    l2_mean = np.array([(l2[m]).sum().item() for m in masks]) / counts.numpy()
    from_diffused = h2_mean * p_z / (h2_mean * p_z + l2_mean)
    coords = _band_coords(shape3, edges_arr, 1.0)
    return xr.Dataset(
        {
            "from_diffused": ("band", from_diffused, {"long_name": "share of band power from the diffused z_T"}),
            "from_noise": ("band", 1 - from_diffused, {"long_name": "share of band power from fresh noise"}),
            "mix_variance": ("band", h2_mean * p_z + l2_mean, {"long_name": "mean power per bin of the mix"}),
        },
        coords=coords,
    )
