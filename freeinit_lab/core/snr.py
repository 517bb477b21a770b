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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._checks import require_int, require_seed
from .dims import band_coords
from .reinit import _flag
from .schedules import NoiseSchedule, get_schedule
from .spectral import _check_dims, _check_video, _require_nonempty_bands, _resolve_edges, band_counts, band_power

__all__ = [
    "band_snr",
    "inference_band_snr",
    "initialization_gap",
    "reinit_band_composition",
    "reinit_power_split",
    "SNR_CONVENTION",
    "GAP_CONVENTION",
    "gaussian_kl",
    "separable_band_index",
    "gap_kl",
    "gap_kl_share",
    "GapShare",
    "gap_kl_difference",
    "GapDifference",
]

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
        **band_coords(edges),
        "num_bins": ("band", band_counts(shape3, edges, temporal_scale=temporal_scale).astype(np.int64)),
    }


def _latent_channels(obj: Any) -> int | None:
    """The latent channel count a pipeline's denoiser produces (``config.out_channels``), or None if unknown (also
    for a scheduler, its config or a NoiseSchedule)."""
    if not hasattr(obj, "components"):
        return None
    # where a pipeline keeps its denoiser is the adapter table's to say, as for its scheduler (get_schedule)
    from freeinit_lab.hooks.layouts import denoiser_channels

    return denoiser_channels(obj)


def _check_channels(x: torch.Tensor, channels: int | None, name: str, source: str) -> None:
    """Refuse a (batch, channel, frame, height, width) tensor whose channel axis does not hold ``channels``.

    Frames and channels cannot be told apart by size alone, so this only checks against a channel count that is
    known (given, or read from a pipeline's denoiser); it never guesses.
    """
    if channels is None or x.dim() != 5:
        return
    channels = int(channels)
    if x.shape[1] == channels:
        return
    if x.shape[2] == channels:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}: its axis 1 holds {x.shape[1]}, but {source} has {channels} latent "
            f"channels, which axis 2 holds. It looks laid out (batch, frame, channel, height, width) (CogVideoX, "
            f"SVD); the spectral tools need (batch, channel, frame, height, width): pass {name}.permute(0, 2, 1, 3, 4)"
        )
    raise ValueError(
        f"{name} has shape {tuple(x.shape)}, read as (batch, channel, frame, height, width), but {source} has "
        f"{channels} latent channels; pass latents of this model (or channels=None to skip the check)"
    )


def _mean_band_power(x: torch.Tensor, edges: np.ndarray, temporal_scale: float) -> np.ndarray:
    power = band_power(x, edges=edges, temporal_scale=temporal_scale)
    return power.reshape(-1, power.shape[-1]).mean(0).detach().cpu().numpy()  # latents may carry a graph


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
    dims: Sequence[str] | None = None,
    channels: int | None = None,
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
    dims
        Optional names of ``x0``'s axes, e.g. ``("clip", "channel", "frame", "height", "width")``. Bands are
        taken over the last three axes, which must be (frame, height, width); a ``(batch, frame, channel, …)``
        tensor named as such is refused with the permutation to apply.
    channels
        Expected latent channel count of a 5-D ``x0`` (axis 1). Read from the denoiser's ``out_channels`` when
        ``scheduler`` is a pipeline; a 5-D ``x0`` whose axis 1 does not hold it is refused (if axis 2 does, the
        error says to permute frames and channels). Sizes alone are never used to guess the layout.

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
    _check_dims(x0, dims, "x0")
    if channels is None:
        channels = _latent_channels(scheduler)
        source = f"the pipeline {type(scheduler).__name__}" if channels is not None else ""
    else:
        source = f"channels={int(channels)}"
    _check_channels(x0, channels, "x0", source)
    if method not in ("closed_form", "monte_carlo"):
        raise ValueError(f"method must be 'closed_form' or 'monte_carlo'; got {method!r}")
    if method == "monte_carlo":  # int() read 2.5 draws as 2 and True as 1
        num_samples = require_int("num_samples", num_samples, why=" (Monte-Carlo noise draws)")
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
    else:
        acc = np.zeros_like(signal)
        for _ in range(num_samples):
            eps = torch.randn(x0.shape, generator=generator, dtype=torch.float32, device=x0.device)
            acc += _mean_band_power(eps, edges_arr, temporal_scale)
        noise = acc / num_samples
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
    dims: Sequence[str] | None = None,
) -> xr.DataArray:
    """Band-wise SNR of an *inference* initial latent ``z = signal + noise`` whose parts are known.

    Plain sampling starts from pure Gaussian noise: pass ``signal=None`` (or zeros) and every band is ``-inf`` dB.
    After a FreeInit reinitialisation the signal part is the low-passed ``a_T z_0`` and the noise part the rest
    (the FreeInit engine records both per iteration). ``dims`` names the axes as in :func:`band_snr`.

    Returns
    -------
    xarray.DataArray
        dims ``("band",)`` in dB, powers averaged over all leading dims; coords as :func:`band_snr`.
    """
    _check_video(noise, "noise")
    _check_dims(noise, dims, "noise")
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
    dims: Sequence[str] | None = None,
    channels: int | None = None,
) -> xr.DataArray:
    """The initialization gap at the terminal timestep, band by band.

    ``x0``, ``scheduler``, ``num_bands``, ``edges``, ``temporal_scale``, ``dims`` and ``channels`` as in
    :func:`band_snr` (a pipeline's latent channel count is checked against ``x0``). The scheduler family is read
    by capability (:func:`~freeinit_lab.schedules.get_schedule`): for flow matching ``a_T = 1 - sigma_max`` and
    ``b_T = sigma_max``.

    Returns
    -------
    xarray.DataArray
        dims ``("band", "source")`` in dB with ``source = ["training z_T", "inference z_T"]``: the training
        noisy latent's band SNR at ``T`` (closed form) next to plain inference's pure-noise initial latent
        (``-inf`` dB: it carries no signal).
    """
    _check_video(x0, "x0")
    _check_dims(x0, dims, "x0")
    if channels is None and _latent_channels(scheduler) is not None:
        _check_channels(x0, _latent_channels(scheduler), "x0", f"the pipeline {type(scheduler).__name__}")
    schedule = get_schedule(scheduler)
    train = band_snr(
        x0, schedule, num_bands, edges=edges, timesteps=[schedule.terminal_timestep], temporal_scale=temporal_scale,
        channels=channels,
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
        Mask ``H`` in FFT order (``(..., F, H, W)``): one mask, possibly broadcast to a latent's shape (different
        masks along the leading dims are refused).
    diffused_power
        Power per bin of ``z_T`` in each band (e.g. ``10**(band_snr/10) * b_T^2 + b_T^2``); default 1 (white,
        unit variance, which ``z_T`` nearly is at the last training step).

    Returns
    -------
    xarray.Dataset
        ``from_diffused``, ``from_noise`` (shares summing to 1) and ``mix_variance`` (mean power per bin of the
        mix) over ``band``.
    """
    if not isinstance(lowpass, torch.Tensor) or lowpass.dim() < 3 or lowpass.is_complex():
        raise TypeError("lowpass must be a real torch.Tensor mask shaped (..., frame, height, width), e.g. "
                        f"lowpass_filter(shape[-3:], ...); got {type(lowpass).__name__} {tuple(getattr(lowpass, 'shape', ()))}")
    stack = lowpass.reshape(-1, *lowpass.shape[-3:]).detach().cpu().double()
    mask = stack[0]
    if not bool((stack == mask).all()):
        raise ValueError(
            f"lowpass of shape {tuple(lowpass.shape)} holds different masks along its leading dims; the composition "
            "is of one mask: pass one (frame, height, width) mask (e.g. lowpass_filter(shape[-3:], ...)), or call "
            "this once per mask"
        )
    if not bool(((mask >= 0) & (mask <= 1)).all()):
        raise ValueError("lowpass mask values must lie in [0, 1] (a FreeInit low-pass filter, lowpass_filter(...))")
    shape3 = tuple(mask.shape)
    # a band with no bin would report its shares as 0 / 0 = NaN: refused, naming the most bands this grid holds
    edges_arr = _require_nonempty_bands(shape3, edges, num_bands, 1.0, who="reinit_band_composition")
    from .spectral import band_masks

    masks = band_masks(shape3, edges=edges_arr)
    if diffused_power is None:
        p_z = np.ones(masks.shape[0])
    else:
        p_z = np.asarray(diffused_power, dtype=np.float64)
        if p_z.shape != (masks.shape[0],) or not bool(np.all(np.isfinite(p_z) & (p_z > 0))):
            raise ValueError(f"diffused_power must hold one finite positive power per band ({masks.shape[0]}); "
                             f"got {p_z.tolist()!r}")
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


def reinit_power_split(
    clean: torch.Tensor,
    noise: torch.Tensor,
    eta: torch.Tensor,
    lowpass: torch.Tensor,
    a_T: float,
    b_T: float,
    *,
    edges: Sequence[float] | None = None,
    num_bands: int = 6,
) -> xr.Dataset:
    r"""Band power of FreeInit's reinitialised latent, term by term, with the cross terms between them.

    ``z'_T = lowpass(a_T x_0 + b_T ε) + highpass(η)`` (:func:`~freeinit_lab.spectral.reinit_noise`) is the sum of
    the signal ``s = a_T·lowpass(x_0)``, the re-diffusion noise ``u = b_T·lowpass(ε)`` and the fresh noise
    ``v = η − lowpass(η)``. Its power per FFT bin is

    .. math::  |S + U + V|^2 = |S|^2 + |U|^2 + |V|^2 + 2\,\mathrm{Re}(S \bar U) + 2\,\mathrm{Re}(S \bar V)
               + 2\,\mathrm{Re}(U \bar V)

    Averaged over the bins of a band (ortho-normalised 3D FFT, unit white noise = 1 per bin) and over channels:
    ``signal`` ``|S|^2``, ``same_noise`` ``|U|^2``, ``fresh_noise`` ``|V|^2``, ``cross_same`` ``2 Re(S Ū)`` and
    ``cross_fresh`` ``2 Re(S V̄) + 2 Re(U V̄)``; ``total`` is the power of ``z'_T`` and equals their sum. When
    ``x_0`` was sampled *from* ``ε`` (FreeInit reuses the first pass's noise, as both public codes do), ``x_0``
    is correlated with ``ε`` and ``cross_same`` does not vanish: the re-diffused latent is not the training
    marginal ``a_T x_0 + b_T ε'`` (``ε'`` independent of ``x_0``, whose cross term averages to zero). An SNR of
    ``signal`` over the noise terms alone leaves that term out. With ``lowpass = 1`` the split is that of
    ``a_T x_0 + b_T ε`` itself (e.g. the training ``z_T`` of held-out videos and independent noise).

    Parameters
    ----------
    clean, noise, eta
        ``(batch, channel, frame, height, width)``: previous pass's clean latent ``x_0``, the noise ``ε`` of the
        re-diffusion, the fresh noise ``η`` of the high band.
    lowpass
        Mask ``H`` in FFT order (``(frame, height, width)``, broadcastable).
    a_T, b_T
        Signal and noise coefficients of the re-diffusion.
    edges, num_bands
        Radial bands (:func:`~freeinit_lab.spectral.default_band_edges`).

    Returns
    -------
    xarray.Dataset
        The six variables above with dims ``(video, band)`` (float64, mean power per bin, x unit white noise),
        band coordinates; attrs ``a_T``, ``b_T``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> eps, eta = torch.randn(2, 4, 3, 8, 16, 16, generator=g)
    >>> H = torch.ones(8, 16, 16)
    >>> ds = reinit_power_split(eps, eps, eta, H, 0.6, 0.8, num_bands=3)  # x_0 = ε: fully correlated
    >>> bool((ds.cross_same > 0).all()), float(abs(ds.fresh_noise).max()) < 1e-20
    (True, True)
    """
    from .spectral import apply_lowpass

    for name, x in (("clean", clean), ("noise", noise), ("eta", eta)):
        if x.dim() != 5:
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (batch, channel, frame, height, width)")
    if not (clean.shape == noise.shape == eta.shape):
        raise ValueError(f"clean {tuple(clean.shape)}, noise {tuple(noise.shape)} and eta {tuple(eta.shape)} differ")
    shape3 = tuple(clean.shape[-3:])
    edges_arr = _resolve_edges(shape3, edges, num_bands, 1.0)
    H = lowpass.to(torch.float64)
    s = float(a_T) * apply_lowpass(clean.double(), H)
    u = float(b_T) * apply_lowpass(noise.double(), H)
    v = eta.double() - apply_lowpass(eta.double(), H)

    def p(x: torch.Tensor) -> np.ndarray:
        # (video, band), channel mean; detached and on the CPU for latents that carry a graph or live on a GPU
        return band_power(x, edges=edges_arr).mean(dim=1).detach().cpu().numpy()

    ps, pu, pv = p(s), p(u), p(v)
    cross_su = p(s + u) - ps - pu
    cross_sv, cross_uv = p(s + v) - ps - pv, p(u + v) - pu - pv
    total = p(s + u + v)
    unit = "mean power per FFT bin (ortho-normalised 3D FFT, channel mean), x unit white noise"
    data = {
        "signal": (ps, "a_T lowpass(x_0)"),
        "same_noise": (pu, "b_T lowpass(eps), the re-diffusion noise"),
        "fresh_noise": (pv, "highpass(eta), the fresh noise"),
        "cross_same": (cross_su, "2 Re(S conj(U)): signal x re-diffusion noise"),
        "cross_fresh": (cross_sv + cross_uv, "2 Re(S conj(V)) + 2 Re(U conj(V)): terms with the fresh noise"),
        "total": (total, "power of the reinitialised latent"),
    }
    coords = {"video": np.arange(clean.shape[0]), **_band_coords(shape3, edges_arr, 1.0)}
    return xr.Dataset({k: (("video", "band"), v, {"long_name": ln, "units": unit}) for k, (v, ln) in data.items()},
                      coords=coords, attrs={"a_T": float(a_T), "b_T": float(b_T)})


# ----------------------------------------------------------------------------------------------------------------
# the gap as a divergence: KL between the inference and the training z_T, per band, in nats
# ----------------------------------------------------------------------------------------------------------------
GAP_CONVENTION = (
    "stationary Gaussian model per FFT bin (ortho-normalised 3D FFT over frame, height, width): training "
    "z_T(k) ~ N(a_T m(k), a_T^2 S_c(k) + b_T^2) with m the per-channel mean field (DC bin only) and S_c the clips' "
    "mean periodogram around it; inference z_T(k) ~ N(0, v(k)) (v = 1 for plain sampling). KL per full-spectrum bin "
    "= 0.5 (v/s + m^2/s - 1 - ln(v/s)) (a complex bin and its conjugate together carry one complex Gaussian), "
    "summed over channels and the bins of each band; nats"
)


def gaussian_kl(var_p, var_q, mean_p=0.0, mean_q=0.0):
    """``KL(N(mean_p, var_p) || N(mean_q, var_q))`` of one real Gaussian, in nats (elementwise, numpy or torch).

    ``0.5 (var_p / var_q + (mean_p - mean_q)² / var_q - 1 - ln(var_p / var_q))``; 0 iff both match.
    """
    ratio = var_p / var_q
    log = torch.log if isinstance(ratio, torch.Tensor) else np.log
    return 0.5 * (ratio + (mean_p - mean_q) ** 2 / var_q - 1 - log(ratio))


def separable_band_index(
    shape: Sequence[int], num_spatial_bands: int = 4, *, spatial_edges: Sequence[float] | None = None
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Separable band grid: spatial radius band × temporal frequency, for every FFT bin.

    The spatial radius is ``sqrt(f_h² + f_w²)`` (normalised, Nyquist = 1) split by ``spatial_edges`` (default:
    :func:`~freeinit_lab.spectral.default_band_edges` of the ``(1, height, width)`` grid: the lowest ring, then
    log-spaced shells); the temporal frequency is ``|f_t|``, one cell per distinct value (``frame // 2 + 1`` of
    them). Radial 3-D bands mix the two; at few frames their lowest bands hold no temporal frequency at all.

    Returns
    -------
    (index, spatial_edges, temporal_frequencies)
        ``index`` int64 ``(frame, height, width)`` in FFT order, cell ``s * T + j`` for spatial band ``s`` and
        temporal bin ``j`` (``T`` temporal bins); the edges used; the normalised ``|f_t|`` of each temporal bin.
    """
    from .spectral import _video_shape, band_index, default_band_edges

    f, h, w = _video_shape(shape)[-3:]
    if spatial_edges is None:  # int() read 2.5 bands as 2 and True as 1
        num_spatial_bands = require_int("num_spatial_bands", num_spatial_bands, why=" (spatial radius bands)")
        spatial_edges = default_band_edges((1, h, w), num_spatial_bands)
    spatial_edges = np.asarray(spatial_edges, dtype=np.float64)
    s_idx = band_index((1, h, w), edges=spatial_edges)[0]  # (H, W)
    n_t = torch.fft.fftfreq(f, d=1.0 / f).abs().round().long()  # |integer temporal bin|
    num_t = f // 2 + 1
    index = s_idx[None] * num_t + n_t.view(-1, 1, 1)
    return index, spatial_edges, np.arange(num_t) * 2.0 / f


def _kl_groups(shape3, grid, num_bands, edges, num_spatial_bands, spatial_edges):
    """Group index per bin (DC = -1) and the coords of the groups."""
    from .spectral import _resolve_edges, band_index

    if grid == "radial":
        e = _resolve_edges(shape3, edges, num_bands, 1.0)
        idx = band_index(shape3, edges=e).clone()
        coords = band_coords(e)
        dims, sizes = ("band",), (e.size - 1,)
    elif grid == "separable":
        idx, s_edges, t_freq = separable_band_index(shape3, num_spatial_bands, spatial_edges=spatial_edges)
        idx = idx.clone()
        coords = {
            "spatial_band": np.arange(s_edges.size - 1),
            "spatial_lo": ("spatial_band", s_edges[:-1], {"units": "normalised spatial radius"}),
            "spatial_hi": ("spatial_band", s_edges[1:], {"units": "normalised spatial radius"}),
            "temporal_frequency": ("temporal_frequency", t_freq, {"long_name": "|f_t|", "units": "normalised frequency"}),
        }
        dims, sizes = ("spatial_band", "temporal_frequency"), (s_edges.size - 1, t_freq.size)
    else:
        raise ValueError(f"grid={grid!r}; use 'radial' (3-D radius bands) or 'separable' (spatial band x |f_t|)")
    idx[0, 0, 0] = -1
    return idx, coords, dims, sizes


def _bootstrap_units(groups: Sequence[int] | None, block_length: int | None) -> str:
    if groups is not None:
        return "clip groups"
    if block_length is not None and int(block_length) > 1:
        return f"circular blocks of {int(block_length)} consecutive segments"
    return "clips"


def _check_groups(groups: Sequence[int], n: int) -> np.ndarray:
    """``groups`` as an array of ``n`` clip ids, refusing another length and NaN/inf ids (``g == nan`` is False:
    such clips would belong to no group and never enter a resample)."""
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must hold one clip id per segment ({n}); got shape {g.shape}")
    if g.dtype.kind in "fc" and not np.isfinite(g).all():
        raise ValueError(f"groups holds non-finite clip ids ({g[~np.isfinite(g)][:3].tolist()}); give every segment "
                         "the finite id (e.g. an integer) of the clip it was cut from")
    return g


def _bootstrap_weights(n: int, num: int, rng: np.random.Generator, groups: Sequence[int] | None = None,
                       block_length: int | None = None) -> np.ndarray:
    """``(num, n)`` resampling weights (each row sums to 1) of a plain, cluster or circular block bootstrap.

    Plain: ``n`` clips drawn with replacement. Cluster (``groups``): the distinct groups drawn with replacement,
    each bringing all its clips. Circular block (``block_length = L``, clips in time order): ``ceil(n / L)`` block
    starts drawn uniformly from ``0 … n − 1``, each bringing ``L`` consecutive clips (wrapping from the last clip
    to the first), concatenated and cut to ``n``; every clip is then equally likely, end clips included. With
    ``L = 1`` the draws are the plain bootstrap's.
    """
    if groups is not None:
        g = _check_groups(groups, n)
        members = [np.flatnonzero(g == u).tolist() for u in np.unique(g)]
        if len(members) < 2:
            raise ValueError("the bootstrap needs at least 2 clips (groups); pass num_bootstrap=0 to skip it")
        draws = rng.integers(0, len(members), size=(num, len(members)))
        weights = np.zeros((num, n))
        for gi, mem in enumerate(members):
            weights[:, mem] += (draws == gi).sum(1, keepdims=True)
        return weights / weights.sum(1, keepdims=True)
    L = 1 if block_length is None else int(block_length)
    starts = rng.integers(0, n, size=(num, -(-n // L)))
    picks = ((starts[:, :, None] + np.arange(L)) % n).reshape(num, -1)[:, :n]
    weights = np.zeros((num, n))
    np.add.at(weights, (np.arange(num)[:, None], picks), 1.0)
    return weights / n


def gap_kl(
    x0: torch.Tensor,
    scheduler: Any,
    num_bands: int = 6,
    *,
    grid: str = "radial",
    edges: Sequence[float] | None = None,
    num_spatial_bands: int = 4,
    spatial_edges: Sequence[float] | None = None,
    normalization: str = "as_given",
    remove_mean: bool = False,
    resolution: str = "band",
    inference_power: float | torch.Tensor = 1.0,
    timestep: float | None = None,
    groups: Sequence[int] | None = None,
    block_length: int | None = None,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    return_resamples: bool = False,
) -> xr.Dataset:
    """The initialization gap as a KL divergence between the inference and the training ``z_T``, band by band.

    A band SNR in dB compares the training ``z_T`` with pure noise's ``-inf`` dB, which is finite against infinite
    for any ``a_T > 0`` and says nothing about how *far apart* the two distributions are. Here both are Gaussian per
    FFT bin (stationary clips, ortho-normalised 3-D FFT): the training marginal ``N(a_T m(k), a_T² S_c(k) + b_T²)``
    with ``m`` the per-channel mean field (DC bin only) and ``S_c(k)`` the clips' mean periodogram around it, and
    inference ``N(0, v(k))`` (``v = 1``: plain sampling). Per full-spectrum bin and channel

    .. math::  \\mathrm{KL}_k = \\tfrac12\\Big(\\frac{v}{s} + \\frac{a_T^2 m^2}{s} - 1 - \\ln\\frac{v}{s}\\Big),
               \\qquad s = a_T^2 S_c(k) + b_T^2

    (a bin and its conjugate carry one complex Gaussian, so this is exact for the whole real latent), summed over
    channels and the bins of a band; the total is the KL between the two distributions of whole latents, in nats.
    The DC bin, which holds the mean colour, is reported on its own (``kl_dc``) and left out of the bands.

    Parameters
    ----------
    x0
        ``(N, C, F, H, W)`` clean latents (clips or segments), ``N >= 2``.
    scheduler
        A diffusers scheduler, pipeline scheduler or :class:`~freeinit_lab.schedules.NoiseSchedule`.
    num_bands, edges
        Radial bands (``grid="radial"``, :func:`~freeinit_lab.spectral.band_masks`).
    grid
        ``"radial"`` (3-D radius) or ``"separable"`` (spatial radius band × ``|f_t|``,
        :func:`separable_band_index`, with ``num_spatial_bands`` / ``spatial_edges``).
    normalization
        ``"as_given"`` or ``"unit_variance"``: divide each channel by its standard deviation over all clips and
        voxels (around its mean) first, as latent-diffusion models scale VAE latents; the scales are in
        ``channel_scale`` and kept fixed in the bootstrap.
    remove_mean
        Remove each clip's own mean colour first (then ``S(0) = 0`` and the mean field vanishes): the gap without
        the clips' colour offsets. ``True`` or ``False`` (a string such as ``"False"`` is refused).
    resolution
        ``"band"``: ``S_c`` averaged over each band's bins before the KL (robust with few clips; the closed form
        from band power); ``"bin"``: per-bin periodogram (needs many clips: a noisy ``S`` biases the KL).
    inference_power
        Per-bin variance ``v`` of the inference ``z_T``: a number, or a tensor broadcastable to ``(C, F, H, W)``
        in FFT order (e.g. the expected power of FreeInit's or a control's initial latent); finite and positive
        in every bin.
    timestep
        Training timestep of the marginal; default the schedule's terminal one.
    groups
        Optional ``(N,)`` clip ids of segments: the bootstrap then resamples whole clips (a cluster bootstrap).
        Ids must be finite (NaN is refused: it would form a group with no members).
    block_length
        For consecutive segments of *one* clip, given in time order: a circular block bootstrap (Politis &
        Romano 1992). Each resample strings together ``ceil(N / L)`` blocks of ``L`` consecutive segments, each
        starting uniformly at one of the ``N`` segments and wrapping from the last to the first, cut to ``N``, so
        that neighbours that resemble each other are drawn together and the interval is not too narrow; unlike
        the moving-block bootstrap (Künsch 1989) it draws the first and last segments as often as the others.
        ``L = 1`` is the plain bootstrap (the same draws for the same seed); ``L = N`` has no spread (every
        resample holds each segment once). Not with ``groups``.
    num_bootstrap, confidence, seed
        Percentile bootstrap over clips (groups, or blocks), ``numpy.random.default_rng(seed)``;
        ``num_bootstrap`` an integer >= 0 (``0`` skips it), ``seed`` an integer >= 0 (bools and floats refused).
    return_resamples
        Also return each resample's KLs (``kl_resample`` over ``resample`` and the band dims, ``kl_dc_resample``
        over ``resample``), so that any function of them — e.g. the share of the gap a group of bands holds,
        :func:`gap_kl_share` — gets its interval from the same resamples. Needs ``num_bootstrap >= 1``.

    Returns
    -------
    xarray.Dataset
        Over the band dims (``band``; or ``spatial_band`` × ``temporal_frequency``): ``kl`` (inference ‖ training),
        ``kl_reverse`` (training ‖ inference), ``kl_per_bin`` (``kl`` / (bins × channels)), ``snr_db`` (training
        band SNR ``a_T² mean|X0|² / b_T²`` of the band's bins, DC excluded), ``num_bins``; scalars ``kl_dc``,
        ``kl_dc_reverse``, ``snr_dc_db``, ``kl_total``, ``kl_total_reverse`` (bands + DC); ``*_low`` / ``*_high``
        bootstrap intervals for the KLs and the SNRs (``snr_db_low``, ``snr_dc_db_low``, ...; the same
        resamples); ``channel_scale`` (channel); with ``return_resamples`` also ``kl_resample`` and
        ``kl_dc_resample``. Units nats (dB for SNR). ``attrs["confidence"]`` is the intervals' level.

    Examples
    --------
    >>> import torch, freeinit_lab as fl
    >>> sched = fl.default_scheduler()
    >>> x = torch.randn(8, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # white: S = 1 per bin
    >>> ds = gap_kl(x, sched, num_bands=3, num_bootstrap=0)
    >>> bool(float(ds.kl_total) < 0.01)  # a_T^2 S + b_T^2 = 1: nearly no gap
    True
    """
    _check_video(x0, "x0")
    if x0.dim() != 5 or x0.shape[0] < 2:
        raise ValueError(f"x0 has shape {tuple(x0.shape)}; pass at least 2 clips shaped (N, C, F, H, W)")
    if normalization not in ("as_given", "unit_variance"):
        raise ValueError(f"normalization={normalization!r}; use 'as_given' or 'unit_variance' (per-channel, latent-like)")
    if resolution not in ("band", "bin"):
        raise ValueError(f"resolution={resolution!r}; use 'band' (from band power) or 'bin' (per-bin periodogram)")
    remove_mean = _flag("remove_mean", remove_mean)
    return_resamples = _flag("return_resamples", return_resamples)
    num_bootstrap = require_int("num_bootstrap", num_bootstrap, low=0, why=" (bootstrap resamples; 0 skips it)")
    seed = require_seed(seed)
    if groups is not None:
        _check_groups(groups, x0.shape[0])
    if num_bootstrap and not 0 < float(confidence) < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1), e.g. 0.99")
    if return_resamples and not num_bootstrap:
        raise ValueError("return_resamples=True needs bootstrap resamples; pass num_bootstrap >= 1 (e.g. 1000)")
    if block_length is not None:
        if groups is not None:
            raise ValueError("pass groups (a cluster bootstrap over clips) or block_length (consecutive segments of "
                             "one clip), not both")
        require_int("block_length", block_length, low=1, high=x0.shape[0],
                    why=" (consecutive segments per bootstrap block; at most the number of segments)")
    schedule: NoiseSchedule = get_schedule(scheduler)
    t = float(schedule.terminal_timestep if timestep is None else timestep)
    a, b = (float(v) for v in schedule.coefficients(t))
    x = x0.detach().to("cpu", torch.float64)
    n, c = x.shape[:2]
    shape3 = tuple(x.shape[-3:])
    nvox = int(np.prod(shape3))
    try:
        v = torch.as_tensor(inference_power.detach() if torch.is_tensor(inference_power) else inference_power,
                            dtype=torch.float64).cpu()
        v = v.expand(c, *shape3).reshape(c, nvox) if v.dim() > 0 else v.expand(c, nvox)
    except (TypeError, ValueError, RuntimeError) as exc:
        got = tuple(inference_power.shape) if hasattr(inference_power, "shape") else repr(inference_power)
        raise ValueError(f"inference_power must be a number or a tensor broadcastable to (C, F, H, W) = "
                         f"{(c, *shape3)} in FFT order (a variance per FFT bin); got {got}") from exc
    if not bool(torch.isfinite(v).all()) or bool((v <= 0).any()):
        raise ValueError("inference_power must be finite and positive in every bin (a variance per FFT bin, e.g. 1.0 "
                         "for plain sampling); it holds NaN, inf or values <= 0")
    scale = x.transpose(0, 1).reshape(c, -1).std(dim=1, unbiased=False) if normalization == "unit_variance" \
        else torch.ones(c, dtype=torch.float64)
    if bool((scale <= 0).any()):
        raise ValueError("a channel of x0 is constant; unit_variance normalisation needs variance in every channel")
    x = x / scale.view(1, -1, 1, 1, 1)
    clip_mean = x.mean(dim=(2, 3, 4))  # (N, C)
    if remove_mean:
        x = x - clip_mean.view(n, c, 1, 1, 1)
        clip_mean = torch.zeros_like(clip_mean)
    idx, coords, dims, sizes = _kl_groups(shape3, grid, num_bands, edges, num_spatial_bands, spatial_edges)
    num_groups = int(np.prod(sizes))
    flat_idx = idx.reshape(-1)
    keep = flat_idx >= 0
    onehot = torch.zeros(nvox, num_groups, dtype=torch.float64)
    onehot[torch.nonzero(keep).flatten(), flat_idx[keep]] = 1.0
    counts = onehot.sum(0)
    if bool((counts == 0).any()):
        raise ValueError(f"some bands hold no frequency bin of a {shape3} grid; use fewer bands or other edges")
    # per-clip periodogram of x around each clip's own mean (the DC bin is handled from the clip means)
    spec = torch.fft.fftn(x - clip_mean.view(n, c, 1, 1, 1), dim=(-3, -2, -1), norm="ortho")
    per = (spec.real**2 + spec.imag**2).reshape(n, c, nvox)  # DC column is 0
    raw = (torch.fft.fftn(x, dim=(-3, -2, -1), norm="ortho").abs() ** 2).reshape(n, c, nvox)
    v_dc = v[:, 0]

    def kl_from(weights: torch.Tensor):
        """KLs for clip weights (R, N) summing to 1 per row: (R, G) fwd, (R, G) rev, (R,) dc fwd, (R,) dc rev."""
        mu = weights @ clip_mean  # (R, C)
        s_dc = nvox * (weights @ clip_mean**2 - mu**2)  # periodogram of the clip means around mu at DC
        var_dc = a * a * s_dc + b * b
        m_dc = a * mu * math.sqrt(nvox)
        dc_f = gaussian_kl(v_dc, var_dc, 0.0, m_dc).sum(-1)
        dc_r = gaussian_kl(var_dc, v_dc, m_dc, 0.0).sum(-1)
        if resolution == "band":
            s_g = torch.einsum("rn,ncg->rcg", weights, per @ onehot) / counts  # (R, C, G) band-mean power
            v_g = (v @ onehot) / counts  # (C, G): band-mean inference power
            var = a * a * s_g + b * b
            fwd = (counts * gaussian_kl(v_g, var)).sum(1)
            rev = (counts * gaussian_kl(var, v_g)).sum(1)
        else:
            var = a * a * torch.einsum("rn,ncb->rcb", weights, per) + b * b  # (R, C, bins)
            fwd = (gaussian_kl(v, var) * keep).sum(1) @ onehot
            rev = (gaussian_kl(var, v) * keep).sum(1) @ onehot
        return fwd, rev, dc_f, dc_r

    point = kl_from(torch.full((1, n), 1.0 / n, dtype=torch.float64))
    fwd, rev, dc_f, dc_r = (p[0] for p in point)
    raw_clip = raw.mean(1)  # (N, nvox): per-clip power per bin, channel mean (DC bin included)
    raw_band = raw_clip @ onehot / counts  # (N, G)
    snr_g = a * a * raw_band.mean(0) / (b * b)
    snr_dc = a * a * float(raw_clip[:, 0].mean()) / (b * b)

    def shaped(t: torch.Tensor) -> np.ndarray:
        return t.reshape(*t.shape[:-1], *sizes).numpy()

    nats = {"units": "nats"}
    data_vars: dict[str, Any] = {
        "kl": (dims, shaped(fwd), {"long_name": "KL(inference z_T || training z_T) per band", **nats}),
        "kl_reverse": (dims, shaped(rev), {"long_name": "KL(training z_T || inference z_T) per band", **nats}),
        "kl_per_bin": (dims, shaped(fwd / (counts * c)), {"long_name": "KL per bin and channel", **nats}),
        "snr_db": (dims, shaped(10 * torch.log10(snr_g)), {"long_name": "training band SNR at t (DC excluded)",
                                                            "units": "dB"}),
        "num_bins": (dims, shaped(counts).astype(np.int64)),
        "kl_dc": ((), float(dc_f), {"long_name": "KL of the DC bin (mean colour)", **nats}),
        "kl_dc_reverse": ((), float(dc_r), nats),
        "snr_dc_db": ((), 10 * math.log10(snr_dc) if snr_dc > 0 else -math.inf, {"units": "dB"}),
        "kl_total": ((), float(fwd.sum() + dc_f), {"long_name": "KL(inference || training) of whole latents", **nats}),
        "kl_total_reverse": ((), float(rev.sum() + dc_r), nats),
        "channel_scale": ("channel", scale.numpy(), {"long_name": "divisor applied per channel"}),
    }
    if num_bootstrap:
        weights = torch.from_numpy(_bootstrap_weights(n, int(num_bootstrap), np.random.default_rng(int(seed)),
                                                      groups, block_length))
        chunk = max(1, int(2e7 // max(1, c * nvox))) if resolution == "bin" else int(num_bootstrap)
        parts = [kl_from(weights[i : i + chunk]) for i in range(0, int(num_bootstrap), chunk)]
        bf, br, bdf, bdr = (torch.cat([p[j] for p in parts]).numpy() for j in range(4))
        q = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]
        for name, boot in (("kl", bf), ("kl_reverse", br)):
            lo, hi = np.percentile(boot, q, axis=0)
            data_vars[f"{name}_low"] = (dims, lo.reshape(sizes), nats)
            data_vars[f"{name}_high"] = (dims, hi.reshape(sizes), nats)
        for name, boot in (("kl_dc", bdf), ("kl_dc_reverse", bdr), ("kl_total", bf.sum(1) + bdf),
                           ("kl_total_reverse", br.sum(1) + bdr)):
            lo, hi = np.percentile(boot, q)
            data_vars[f"{name}_low"], data_vars[f"{name}_high"] = ((), float(lo), nats), ((), float(hi), nats)
        # the training band SNR under the same resamples (DC excluded from the bands, reported apart)
        with np.errstate(divide="ignore"):
            snr_boot = 10 * np.log10(a * a * (weights @ raw_band).numpy() / (b * b))  # (R, G)
            snr_dc_boot = 10 * np.log10(a * a * (weights @ raw_clip[:, 0]).numpy() / (b * b))  # (R,)
        lo, hi = np.percentile(snr_boot, q, axis=0)
        db = {"units": "dB"}
        data_vars["snr_db_low"], data_vars["snr_db_high"] = (dims, lo.reshape(sizes), db), (dims, hi.reshape(sizes), db)
        lo, hi = np.percentile(snr_dc_boot, q)
        data_vars["snr_dc_db_low"], data_vars["snr_dc_db_high"] = ((), float(lo), db), ((), float(hi), db)
        if return_resamples:
            data_vars["kl_resample"] = (("resample", *dims), bf.reshape(-1, *sizes),
                                        {"long_name": "kl of each bootstrap resample", **nats})
            data_vars["kl_dc_resample"] = ("resample", bdf, {"long_name": "kl_dc of each bootstrap resample", **nats})
    return xr.Dataset(
        data_vars,
        coords={**coords, "channel": np.arange(c)},
        attrs=dict(
            convention=GAP_CONVENTION, grid=grid, normalization=normalization, remove_mean=int(bool(remove_mean)),
            resolution=resolution, timestep=t, a_t=a, b_t=b, num_clips=n,
            num_groups=n if groups is None else int(len(np.unique(np.asarray(groups)))),
            block_length=1 if block_length is None else int(block_length),
            bootstrap=(f"percentile bootstrap over {_bootstrap_units(groups, block_length)}: {num_bootstrap} "
                       f"resamples with replacement (numpy default_rng({seed})), {confidence:.0%}"
                       if num_bootstrap else "none"),
            scheduler_class=schedule.scheduler_class,
            **({"confidence": float(confidence), "bootstrap_seed": int(seed)} if num_bootstrap else {}),
        ),
    )


@dataclass(frozen=True)
class GapDifference:
    """The difference of two data sets' gap KL in a group of bins, with its bootstrap interval.

    ``difference`` is ``KL_a − KL_b`` from all clips (nats), ``low`` / ``high`` the percentile interval at
    ``confidence`` over ``num_resamples`` pairs of independent resamples; ``what`` says which bins.
    """

    difference: float
    low: float
    high: float
    confidence: float
    num_resamples: int
    what: str

    def __str__(self) -> str:
        return (f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}] nats ({self.confidence:.0%} percentile "
                f"bootstrap of the difference, {self.num_resamples} independent resample pairs; {self.what})")


def gap_kl_difference(
    a: xr.Dataset,
    b: xr.Dataset,
    select: Mapping[str, Any] | None = None,
    *,
    dc: bool = False,
    confidence: float | None = None,
) -> GapDifference:
    r"""How much more gap (KL) data set ``a`` holds than an independent data set ``b`` in a group of bins.

    With ``KL^a_G`` the KL that ``a`` holds in the bands ``G`` (or in its DC bin, ``dc=True``; :func:`gap_kl`),

    .. math::  Δ_G = \mathrm{KL}^a_G - \mathrm{KL}^b_G, \qquad
               Δ_{G,r} = \mathrm{KL}^a_{G,r} - \mathrm{KL}^b_{G,r}

    where resample ``r`` of ``a`` and resample ``r`` of ``b`` are drawn independently (the two sets share no
    clips, so this is the bootstrap of a difference of two independent samples); the interval is the
    ``(1 − c)/2`` and ``(1 + c)/2`` percentiles of ``Δ_{G,r}``. One interval of the difference at level ``c``,
    where two separate intervals that do not overlap say the same at an unstated, stricter level.

    Parameters
    ----------
    a, b
        Outputs of :func:`gap_kl` with ``return_resamples=True``, the same band grid and number of resamples,
        and different bootstrap ``seed`` s (one seed would draw related resample indices for the two sets).
    select
        ``{band dim: positional indexer}`` of the bands to sum, as for :func:`gap_kl_share`; ``None``: every band.
    dc
        Compare the DC bin's KL instead (``select`` must then be ``None``).
    confidence
        Level of the interval; default the one :func:`gap_kl` used for ``a``.

    Examples
    --------
    >>> import torch, freeinit_lab as fl
    >>> red = lambda s: torch.randn(8, 3, 4, 8, 8, generator=torch.Generator().manual_seed(s)).cumsum(-1)
    >>> kw = dict(num_bands=3, num_bootstrap=200, return_resamples=True)
    >>> a, b = fl.gap_kl(red(0), fl.default_scheduler(), seed=0, **kw), fl.gap_kl(red(1), fl.default_scheduler(), seed=1, **kw)
    >>> d = gap_kl_difference(a, b, {"band": 0})
    >>> d.low < d.difference < d.high
    True
    """
    for name, ds in (("a", a), ("b", b)):
        if not isinstance(ds, xr.Dataset) or "kl" not in ds or "kl_dc" not in ds:
            raise TypeError(f"{name} must be the xarray.Dataset that gap_kl returns; got {type(ds).__name__}")
        if "kl_resample" not in ds or "kl_dc_resample" not in ds:
            raise ValueError(f"{name} holds no bootstrap resamples; call gap_kl(..., num_bootstrap=1000, "
                             "return_resamples=True)")
    if a.kl.dims != b.kl.dims or any(not np.array_equal(a[d].values, b[d].values) for d in a.kl.dims):
        raise ValueError(f"a and b have other band grids ({dict(a.kl.sizes)} vs {dict(b.kl.sizes)}); call gap_kl with "
                         "the same grid, num_bands and edges for both")
    if a.sizes["resample"] != b.sizes["resample"]:
        raise ValueError(f"a has {a.sizes['resample']} resamples and b {b.sizes['resample']}; pass one num_bootstrap")
    if a.attrs.get("bootstrap_seed") is None or b.attrs.get("bootstrap_seed") is None:
        raise ValueError("a or b does not record its bootstrap seed (made before gap_kl stored it): recompute both "
                         "with gap_kl(..., return_resamples=True) and different seeds")
    if a.attrs.get("bootstrap_seed") == b.attrs.get("bootstrap_seed"):
        raise ValueError(f"a and b were resampled with one seed ({a.attrs.get('bootstrap_seed')}): their resample "
                         "indices would be related; call gap_kl for b with another seed (e.g. seed + 1)")
    if dc and select is not None:
        raise ValueError("dc=True compares the DC bin; leave select out (it picks bands)")
    if confidence is None:
        confidence = a.attrs.get("confidence")
    if confidence is None or not 0 < float(confidence) < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1), e.g. 0.99")
    select = dict(select or {})

    def value(ds):
        return (float(ds.kl_dc), ds.kl_dc_resample.values) if dc else _band_group(ds, select)

    (va, ra), (vb, rb) = value(a), value(b)
    boot = ra - rb
    lo, hi = np.percentile(boot, [50 * (1 - float(confidence)), 50 * (1 + float(confidence))])
    what = "DC bin" if dc else (", ".join(f"{d} {_describe_index(v, a.sizes[d])}" for d, v in select.items())
                                or "every band")
    return GapDifference(difference=va - vb, low=float(lo), high=float(hi), confidence=float(confidence),
                         num_resamples=int(boot.size), what=what)


def _band_group(ds: xr.Dataset, select: dict) -> tuple[float, np.ndarray]:
    """The KL summed over the bands ``ds.kl.isel(select)`` picks: from all clips, and per bootstrap resample
    (``select`` checked to name band dims only, each band at most once)."""
    unknown = [d for d in select if d not in ds.kl.dims]
    if unknown:
        raise ValueError(f"select names {unknown}, not band dims of ds; its band dims are {ds.kl.dims}")
    for d, index in select.items():
        picked = np.atleast_1d(np.arange(ds.sizes[d])[index])
        if np.unique(picked).size < picked.size:
            raise ValueError(f"select={{{d!r}: {index!r}}} names a band more than once ({picked.tolist()}); it would "
                             "count that band's KL twice: name each band once")
    part = ds.kl_resample.isel(select)
    return float(ds.kl.isel(select).sum()), part.sum([d for d in part.dims if d != "resample"]).values


def _describe_index(index: Any, size: int) -> str:
    """``slice(0, 3)`` -> ``"0-2"``; an int or list as its values (for :class:`GapShare`'s label)."""
    values = np.arange(size)[index]
    values = np.atleast_1d(values)
    if values.size > 1 and bool((np.diff(values) == 1).all()):
        return f"{values[0]}-{values[-1]}"
    return ",".join(str(v) for v in values)


@dataclass(frozen=True)
class GapShare:
    """The share of the initialization gap (KL) a group of bins holds, with its bootstrap interval.

    ``share`` is the point estimate (from all clips), ``low`` / ``high`` the percentile interval at ``confidence``
    over ``num_resamples`` bootstrap resamples; ``what`` says which bins over which total.
    """

    share: float
    low: float
    high: float
    confidence: float
    num_resamples: int
    what: str

    def __str__(self) -> str:
        return (f"{self.share:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.confidence:.0%} percentile bootstrap, "
                f"{self.num_resamples} resamples; {self.what})")


def gap_kl_share(
    ds: xr.Dataset,
    select: Mapping[str, Any] | None = None,
    *,
    include_dc: bool = False,
    denominator: str = "total",
    confidence: float | None = None,
) -> GapShare:
    """The share of the gap's KL that a group of bands holds, with a percentile interval from the same resamples.

    With ``KL_g`` the KL of band (cell) ``g`` and ``KL_DC`` that of the DC bin (:func:`gap_kl`), the share of a
    group ``G`` of bands is

    .. math::  \\mathrm{share}_G = \\frac{\\sum_{g \\in G} \\mathrm{KL}_g + [\\text{include\\_dc}]\\,\\mathrm{KL}_{DC}}
                                       {\\sum_{g} \\mathrm{KL}_g + [\\text{denominator = total}]\\,\\mathrm{KL}_{DC}}

    computed once from all clips (``share``) and once per bootstrap resample ``r`` of :func:`gap_kl` (the same
    resampled clips in numerator and denominator); the interval is the ``(1 - c) / 2`` and ``(1 + c) / 2``
    percentiles of ``share_{G, r}`` over ``r``. A ratio of the bounds of separate marginal intervals (lower bound of
    the part over upper bound of the total) has no stated level; this interval has one.

    Parameters
    ----------
    ds
        Output of :func:`gap_kl` called with ``num_bootstrap >= 1`` and ``return_resamples=True``.
    select
        ``{band dim: positional indexer}`` as for ``Dataset.isel``, e.g. ``{"band": slice(0, 3)}`` (radial grid) or
        ``{"temporal_frequency": 0}`` (separable grid; the other dims are summed over). ``None``: every band.
        Each band at most once (a repeated index, e.g. ``[1, 2, 2]``, is refused).
    include_dc
        Add the DC bin's KL (mean colour) to the numerator; needs ``denominator="total"``.
    denominator
        ``"total"``: the KL of whole latents (bands + DC, ``kl_total``); ``"bands"``: the KL outside the DC bin.
    confidence
        Level of the interval; default the one :func:`gap_kl` used (``ds.attrs["confidence"]``).

    Returns
    -------
    GapShare
        ``share``, ``low``, ``high`` (dimensionless, in [0, 1]), ``confidence``, ``num_resamples``, ``what``.

    Examples
    --------
    >>> import torch, freeinit_lab as fl
    >>> x = torch.randn(6, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)).cumsum(-1)  # red spectrum
    >>> ds = fl.gap_kl(x, fl.default_scheduler(), num_bands=3, num_bootstrap=200, return_resamples=True)
    >>> s = gap_kl_share(ds, {"band": slice(0, 3)}, include_dc=True)  # every bin: the whole gap
    >>> (round(s.share, 6), round(s.low, 6), round(s.high, 6))
    (1.0, 1.0, 1.0)
    """
    if not isinstance(ds, xr.Dataset) or "kl" not in ds or "kl_dc" not in ds:
        raise TypeError(f"ds must be the xarray.Dataset that gap_kl returns; got {type(ds).__name__}")
    if "kl_resample" not in ds or "kl_dc_resample" not in ds:
        raise ValueError("ds holds no bootstrap resamples; call gap_kl(..., num_bootstrap=1000, "
                         "return_resamples=True) so the share's interval comes from the same resamples")
    if denominator not in ("total", "bands"):
        raise ValueError(f"denominator={denominator!r}; use 'total' (bands + DC bin) or 'bands' (DC bin left out)")
    if include_dc and denominator == "bands":
        raise ValueError("include_dc=True puts the DC bin's KL in the share but denominator='bands' leaves it out of "
                         "the total; use denominator='total'")
    if confidence is None:
        confidence = ds.attrs.get("confidence")
        if confidence is None:
            raise ValueError("ds does not say its confidence level; pass confidence= (e.g. 0.99)")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1), e.g. 0.99")
    select = dict(select or {})
    num, num_boot = _band_group(ds, select)
    if ds.kl.isel(select).size == 0 and not include_dc:
        raise ValueError(f"select={select} holds no band and include_dc is False: the share would be empty")
    band_dims = list(ds.kl.dims)
    num += float(ds.kl_dc) if include_dc else 0.0
    den = float(ds.kl.sum())
    den_boot = ds.kl_resample.sum(band_dims).values
    if include_dc or denominator == "total":
        dc_boot = ds.kl_dc_resample.values
        if include_dc:
            num_boot = num_boot + dc_boot
        den, den_boot = den + float(ds.kl_dc), den_boot + dc_boot
    if not den > 0 or not bool((den_boot > 0).all()):
        raise ValueError("the gap's KL is 0 (the training z_T equals the inference one, e.g. a schedule with "
                         "a_T = 0): there is no gap to share out")
    boot = num_boot / den_boot
    lo, hi = np.percentile(boot, [50 * (1 - float(confidence)), 50 * (1 + float(confidence))])
    sel = ", ".join(f"{d} {_describe_index(v, ds.sizes[d])}" for d, v in select.items()) or "every band"
    what = f"KL of {sel}{' + DC bin' if include_dc else ''} over the {'whole' if denominator == 'total' else 'non-DC'} KL"
    return GapShare(share=num / den, low=float(lo), high=float(hi), confidence=float(confidence),
                    num_resamples=int(boot.size), what=what)
