"""Analysis of probe records: band trajectories over denoising steps, convergence, layout lock-in.

Functions take a record (``xarray.Dataset`` from :class:`freeinit_lab.LatentProbe`) or one of its variables and
return labelled ``xarray.DataArray`` objects with ``name``, ``long_name`` and ``units``, so they compose and plot
themselves. Reductions run along named dims (``dim="step"``), never positional axes.

Conventions [ours] (the paper's exact band definition is not public): radial bands of the ortho-normalised 3D FFT
over ``(frame, height, width)`` from :mod:`freeinit_lab.spectral` (default edges
:func:`~freeinit_lab.spectral.default_band_edges`); band power is the mean ``|X|^2`` per bin (white unit-variance
noise gives 1); SNRs in dB.

:func:`follow_fraction` measures how much of each band of one trajectory follows another; the noise-swap runs
that use it are in :mod:`freeinit_lab.studies.noise_swap`.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from freeinit_lab.core.dims import band_coords

__all__ = [
    "band_power_trajectory",
    "band_snr_trajectory",
    "band_error_trajectory",
    "convergence_to_final",
    "lock_in_step",
    "follow_fraction",
]

_ST = ("frame", "height", "width")


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def _pick(record: xr.Dataset | xr.DataArray, var: str) -> xr.DataArray:
    if isinstance(record, xr.DataArray):
        return record
    if var not in record.data_vars:
        raise KeyError(
            f"the record has no variable {var!r} (has {list(record.data_vars)}); capture it with "
            f"LatentProbe(..., capture=(..., {var!r})) or pass var=..."
        )
    return record[var]


def _check_video(da: xr.DataArray) -> None:
    missing = [d for d in _ST if d not in da.dims]
    if missing:
        raise ValueError(
            f"{da.name or 'array'} has dims {da.dims}, without {missing}: a full-mode record is needed "
            "(LatentProbe(mode='full')), or pass band powers to the functions that accept them"
        )


def _band_setup(shape3: tuple[int, int, int], edges, num_bands: int) -> tuple[np.ndarray, torch.Tensor]:
    from freeinit_lab.core.spectral import band_masks, default_band_edges

    edges = default_band_edges(shape3, num_bands) if edges is None else np.asarray(edges, dtype=np.float64)
    masks = band_masks(shape3, edges=edges)
    return np.asarray(edges, dtype=np.float64), masks


def _band_coords(edges: np.ndarray) -> dict[str, Any]:
    return band_coords(edges)


def _keep_coords(da: xr.DataArray, drop_dims: Sequence[str]) -> dict[str, xr.DataArray]:
    return {k: v for k, v in da.coords.items() if not set(v.dims) & set(drop_dims)}


def _band_reduce(values: np.ndarray, masks: torch.Tensor) -> np.ndarray:
    """Sum of ``values`` (..., F, H, W) over the bins of each band -> (..., K)."""
    flat = torch.as_tensor(values).reshape(*values.shape[:-3], -1)
    m = masks.reshape(masks.shape[0], -1).to(flat.dtype)
    return (flat @ m.T).numpy()


def _spectrum(da: xr.DataArray) -> tuple[torch.Tensor, list[str]]:
    """Ortho-normalised 3D FFT over (frame, height, width) of ``da`` (those dims moved last), complex128."""
    other = [d for d in da.dims if d not in _ST]
    x = torch.as_tensor(np.asarray(da.transpose(*other, *_ST).values, dtype=np.float64))
    return torch.fft.fftn(x, dim=(-3, -2, -1), norm="ortho"), other


def _cut_short(da: xr.DataArray, last: xr.DataArray, dim: str) -> xr.DataArray | None:
    """Which passes stop before their last step: the last stored ``dim`` index ``last`` (per pass) against the
    record's ``num_steps`` coord (steps the pass was to run). ``None`` when the record cannot tell (no
    ``num_steps`` or ``step`` coord, an unknown step count, or ``num_steps`` over dims the passes lack)."""
    if dim != "step" or "num_steps" not in da.coords or dim not in da.coords:
        return None
    planned = da.coords["num_steps"]
    if not set(planned.dims) <= set(last.dims):
        return None
    planned = planned.drop_vars([c for c in planned.coords if c not in planned.dims])
    reached = xr.DataArray(np.asarray(da[dim].values)[last.values], dims=last.dims)
    return (reached < planned - 1) & (planned > 0)


def _warn_cut_short(short: xr.DataArray, what: str) -> None:
    from freeinit_lab.probes.io import IncompleteRecordWarning

    where = [dict(zip(short.dims, map(int, i))) for i in np.argwhere(np.asarray(short.values))]
    listed = f"{where[:4]}{' ...' if len(where) > 4 else ''}"
    warnings.warn(
        f"{len(where)} pass(es) of the record stop before their last step ({listed};"
        f" the capture was interrupted, complete = 0, or the record was sliced): their final latent is missing, so "
        f"{what} is NaN for them rather than measured against a mid-trajectory latent. Pass reference= to choose one, "
        "or drop the num_steps coord to measure against the last stored step",
        IncompleteRecordWarning,
        stacklevel=4,
    )


def _final_per_pass(da: xr.DataArray, dim: str, what: str = "the distance from the final value") -> xr.DataArray:
    """Last finite value along ``dim`` for each pass (``iteration``) separately.

    NaN (with an :class:`~freeinit_lab.probes.io.IncompleteRecordWarning`) for a pass whose last stored step is
    not its last step (``num_steps`` coord): an interrupted pass has no final value to converge to.
    """
    pass_dims = [d for d in ("iteration",) if d in da.dims]
    other = [d for d in da.dims if d != dim and d not in pass_dims]
    present = np.isfinite(da).all(other) if other else np.isfinite(da)
    idx = present.isel({dim: slice(None, None, -1)}).argmax(dim)
    last = da.sizes[dim] - 1 - idx
    out = da.isel({dim: last})
    out = out.drop_vars([c for c in out.coords if dim in da[c].dims or c == dim], errors="ignore")
    short = _cut_short(da, last, dim)
    if short is not None and bool(short.any()):
        _warn_cut_short(short, what)
        out = out.where(~short)
    return out


# ----------------------------------------------------------------------------------------------------------------
# band trajectories
# ----------------------------------------------------------------------------------------------------------------
def band_power_trajectory(
    record: xr.Dataset | xr.DataArray, var: str = "x0_pred", *, edges=None, num_bands: int = 6
) -> xr.DataArray:
    """Mean power per frequency band of a captured variable at every step.

    Parameters
    ----------
    record
        A probe record or one of its variables: full mode (dims ``frame, height, width``) or already band powers
        (``mode="band_power"``, dim ``band``; returned unchanged). Computed in float32 (float64 for a float64
        record).
    var
        Variable of a Dataset record (``"x0_pred"``, ``"latents"``, …).
    edges, num_bands
        Band definition (see :func:`freeinit_lab.spectral.band_masks`).

    Returns
    -------
    xarray.DataArray
        dims of the input with ``(frame, height, width)`` replaced by ``band`` (coords ``band_lo``, ``band_hi``);
        float64; steps a pass did not run stay NaN.

    Examples
    --------
    >>> traj = band_power_trajectory(ds, "x0_pred")  # doctest: +SKIP
    >>> px.line(traj.isel(iteration=0, batch=0).mean("channel").to_pandas(), log_y=True)  # doctest: +SKIP
    """
    from freeinit_lab.core.spectral import band_power

    da = _pick(record, var)
    if "band" in da.dims:
        return da
    _check_video(da)
    other = [d for d in da.dims if d not in _ST]
    values = np.asarray(da.transpose(*other, *_ST).values)
    # float32 like the probe's band-power mode, but a float64 record keeps its precision: rounded to float32 first,
    # a smooth video's high bands would read the rounding noise (~1e-7 of its DC) instead of their power
    x = torch.as_tensor(values.astype(np.float64 if values.dtype == np.float64 else np.float32, copy=False))
    shape3 = tuple(x.shape[-3:])
    edges, _ = _band_setup(shape3, edges, num_bands)
    flat = x.reshape(-1, *shape3)
    finite = torch.isfinite(flat).flatten(1).all(1)  # NaN-padded steps (passes that ended earlier) stay NaN
    power = np.full((flat.shape[0], len(edges) - 1), np.nan)
    if finite.any():
        power[finite.numpy()] = band_power(flat[finite], edges=edges).numpy()
    power = power.reshape(*x.shape[:-3], len(edges) - 1)
    out = xr.DataArray(power, dims=(*other, "band"), coords={**_keep_coords(da, _ST), **_band_coords(edges)})
    out.name = f"{da.name}_band_power" if da.name else "band_power"
    out.attrs = {
        "long_name": f"band power of {da.attrs.get('long_name', da.name or 'the signal')}",
        "units": "power per bin (white unit noise = 1)",
    }
    return out


def band_error_trajectory(
    record: xr.Dataset | xr.DataArray,
    var: str = "x0_pred",
    *,
    reference: xr.DataArray | None = None,
    dim: str = "step",
    sum_over: Sequence[str] = ("channel",),
    edges=None,
    num_bands: int = 6,
) -> xr.DataArray:
    """Relative band-limited distance of each step's content from a reference (default: the pass's final value).

    ``E_k(i) = sum_{bins in k} |X_i - X_ref|^2 / sum_{bins in k} |X_ref|^2`` with ``X`` the ortho 3D FFT over
    ``(frame, height, width)``; sums also run over ``sum_over`` dims (channels by default). Unlike band *power*,
    this sees phase, i.e. where the content is: ``E_0`` falling to ~0 early means the low-frequency layout is
    decided early.

    Parameters
    ----------
    record, var
        Full-mode record (or variable) with ``dim`` and ``(frame, height, width)``.
    reference
        Array broadcastable against one step; default the last step of each pass (the last finite step of each
        iteration). A pass cut short (its last stored step before ``num_steps - 1``: an interrupted capture,
        ``complete = 0``) has no last step: NaN, with an ``IncompleteRecordWarning``.
    dim
        The step dim.
    sum_over
        Dims summed inside the band energies (present ones only).
    edges, num_bands
        Band definition.

    Returns
    -------
    xarray.DataArray
        dims of the input without ``(frame, height, width)`` and ``sum_over``, plus ``band``; dimensionless.
    """
    da = _pick(record, var)
    _check_video(da)
    ref = _final_per_pass(da, dim, "the band error") if reference is None else reference
    ref = ref.broadcast_like(da.isel({dim: 0}, drop=True)).transpose(*[d for d in da.dims if d != dim])
    diff = da - ref
    spec_d, other = _spectrum(diff)
    spec_r, other_r = _spectrum(ref)
    shape3 = tuple(spec_d.shape[-3:])
    edges, masks = _band_setup(shape3, edges, num_bands)
    num = _band_reduce((spec_d.abs() ** 2).numpy(), masks)
    den = _band_reduce((spec_r.abs() ** 2).numpy(), masks)
    num_da = xr.DataArray(num, dims=(*other, "band"))
    den_da = xr.DataArray(den, dims=(*other_r, "band"))
    summed = [d for d in sum_over if d in other]
    num_da = num_da.sum(summed, skipna=False)
    den_da = den_da.sum([d for d in summed if d in den_da.dims])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num_da / den_da
    out = out.transpose(*[d for d in da.dims if d not in _ST and d not in summed], "band")
    out = out.assign_coords({**_keep_coords(da, (*_ST, *summed)), **_band_coords(edges)})
    out.name = f"{da.name}_band_error" if da.name else "band_error"
    out.attrs = {
        "long_name": f"relative band error of {da.attrs.get('long_name', da.name or 'the signal')} vs final",
        "units": "1",
    }
    return out


def convergence_to_final(traj: xr.DataArray, dim: str = "step") -> xr.DataArray:
    """``|v_i - v_final| / |v_final|`` along ``dim``: how far each value (e.g. each band's power) is from where it ends.

    The final value is taken per pass (``iteration``), as the last finite value along ``dim``; a pass cut short
    (its last stored step before ``num_steps - 1``) gives NaN, with an ``IncompleteRecordWarning``.

    Returns
    -------
    xarray.DataArray
        Same dims as ``traj``; 0 at the final step; dimensionless.
    """
    final = _final_per_pass(traj, dim, "the convergence")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = abs(traj - final) / abs(final)
    out = out.assign_coords({k: v for k, v in traj.coords.items()})
    out.name = f"{traj.name}_convergence" if traj.name else "convergence"
    out.attrs = {"long_name": f"relative distance from final {traj.attrs.get('long_name', traj.name or '')}".strip(),
                 "units": "1"}
    return out


def lock_in_step(err: xr.DataArray, *, tol: float = 0.1, band: int | None = 0, dim: str = "step") -> xr.DataArray:
    """The first step from which ``err`` stays at or below ``tol`` for the rest of the pass.

    Applied to :func:`band_error_trajectory` (``band=0``) this is the low-frequency "layout lock-in" step: from
    there on the coarse spatio-temporal layout of the prediction no longer changes by more than ``tol``
    (relative energy). Applied to :func:`convergence_to_final` of band powers it is the step where a band's power
    settles.

    Parameters
    ----------
    err
        A non-negative trajectory along ``dim`` (NaN where a pass did not run).
    tol
        Threshold.
    band
        Select this band first (``None`` keeps every band).
    dim
        The step dim; its coordinate values are returned.

    Returns
    -------
    xarray.DataArray
        Step (coordinate value of ``dim``) per remaining element; NaN where the last present step is above
        ``tol``. Coord ``lock_in_fraction``: that step divided by the pass's number of steps when the record has
        ``num_steps``.
    """
    if band is not None and "band" in err.dims:
        err = err.isel(band=band)
    present = np.isfinite(err)
    ok = (err <= tol) | ~present
    # ok from here to the end: reversed cumulative product
    rev = ok.isel({dim: slice(None, None, -1)}).astype(int).cumprod(dim).isel({dim: slice(None, None, -1)}).astype(bool)
    start = rev & present
    has = start.any(dim)
    first = start.argmax(dim)
    steps = err[dim].values
    values = np.where(has.values, steps[first.values], np.nan).astype(np.float64)
    out = xr.DataArray(values, dims=first.dims, coords={k: v for k, v in first.coords.items()})
    out.name = "lock_in_step"
    out.attrs = {"long_name": f"first step after which {err.name or 'the error'} stays <= {tol:g}", "units": "step",
                 "tol": float(tol)}
    if "num_steps" in err.coords and set(err.coords["num_steps"].dims) <= set(out.dims):
        out = out.assign_coords(lock_in_fraction=out / err.coords["num_steps"])
    return out


def band_snr_trajectory(
    record: xr.Dataset,
    var: str = "latents_in",
    *,
    method: str = "auto",
    reference: xr.DataArray | None = None,
    sum_over: Sequence[str] = ("channel",),
    edges=None,
    num_bands: int = 6,
) -> xr.DataArray:
    """Band SNR (dB) of the noisy latent along the trajectory, relative to the clean latent it ends at.

    ``method="empirical"`` (full records): at step ``i`` with ``z = a_i x_hat + r``, where ``x_hat`` is the
    pass's final latent (``reference``) and ``a_i`` the step's ``alpha`` coord,
    ``SNR_k = a_i^2 sum_k |X_hat|^2 / sum_k |FFT(z - a_i x_hat)|^2``: how much of each band of the latent is
    already the final video. ``method="nominal"`` (also band-power records): the schedule's
    ``a_i^2 P_k(x_hat) / b_i^2`` (noise assumed white with unit power per bin), the convention of
    :func:`freeinit_lab.snr.band_snr`. ``"auto"`` picks empirical when possible.

    ``var="latents_in"`` uses the step's own ``alpha``/``sigma``; ``var="latents"`` (the latent after the step)
    uses the next step's, and the clean level (a=1, b=0) after the last step. A pass cut short (interrupted
    capture) has neither a final latent nor a known level after its last stored step: NaN there.

    Returns
    -------
    xarray.DataArray
        dims ``(iteration, step, batch, band)`` (channels summed, ``sum_over``), units dB.
    """
    if var not in record.data_vars:
        raise KeyError(f"the record has no {var!r}; capture ('latents_in',) or pass var='latents'")
    da = record[var]
    if "alpha" not in record.coords or "sigma" not in record.coords:
        raise ValueError("the record has no alpha/sigma coords (the probe could not read the schedule)")
    alpha, sigma = record["alpha"], record["sigma"]
    if var == "latents":
        alpha, sigma = _next_level(alpha, record), _next_level(sigma, record, clean=0.0)
    if reference is None:
        source = record["latents"] if "latents" in record.data_vars else da
        reference = _final_per_pass(source, "step", "the band SNR")
    if method == "auto":
        method = "empirical" if all(d in da.dims for d in _ST) else "nominal"
    if method == "empirical":
        _check_video(da)
        ref = reference.broadcast_like(da.isel(step=0, drop=True))
        resid = da - alpha * ref
        spec_n, other = _spectrum(resid)
        spec_s, other_s = _spectrum(ref)
        edges, masks = _band_setup(tuple(spec_n.shape[-3:]), edges, num_bands)
        noise = xr.DataArray(_band_reduce((spec_n.abs() ** 2).numpy(), masks), dims=(*other, "band"))
        signal = xr.DataArray(_band_reduce((spec_s.abs() ** 2).numpy(), masks), dims=(*other_s, "band"))
        summed = [d for d in sum_over if d in other]
        noise = noise.sum(summed, skipna=False)
        signal = signal.sum([d for d in summed if d in signal.dims])
        alpha_al = alpha.drop_vars([c for c in alpha.coords if c not in alpha.dims])
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 10 * np.log10(alpha_al**2 * signal / noise)
        keep = (*_ST, *summed)
    elif method == "nominal":
        p_ref = band_power_trajectory(reference, edges=edges, num_bands=num_bands)
        summed = [d for d in sum_over if d in p_ref.dims]
        p_ref = p_ref.mean(summed)
        band_coords = {k: p_ref[k] for k in ("band_lo", "band_hi") if k in p_ref.coords}
        p_ref = p_ref.drop_vars([c for c in p_ref.coords if c not in p_ref.dims])
        a = alpha.drop_vars([c for c in alpha.coords if c not in alpha.dims])
        b = sigma.drop_vars([c for c in sigma.coords if c not in sigma.dims])
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 10 * np.log10(a**2 * p_ref / b**2)
        out = out.assign_coords(band_coords)
        keep = ("band", *summed, *_ST)
    else:
        raise ValueError(f"method must be 'auto', 'empirical' or 'nominal'; got {method!r}")
    order = [d for d in da.dims if d not in keep and d != "band"] + ["band"]
    out = out.transpose(*[d for d in order if d in out.dims])
    coords = _keep_coords(da, keep)
    if method == "empirical":
        coords.update(_band_coords(edges))
    out = out.assign_coords(coords)
    out.name = f"{var}_band_snr"
    out.attrs = {"long_name": f"band SNR of {var} ({method})", "units": "dB"}
    return out


def _next_level(coef: xr.DataArray, record: xr.Dataset, clean: float = 1.0) -> xr.DataArray:
    """The coefficient of the *next* step (the latent after step i sits at step i+1's level)."""
    values = coef.values
    out = np.full_like(values, np.nan)
    out[:, :-1] = values[:, 1:]
    # the last step of each pass ends at the clean level
    present = np.isfinite(record["timestep"].values)
    steps = np.asarray(record["step"].values) if "step" in record.coords else np.arange(values.shape[1])
    planned = np.asarray(record["num_steps"].values).reshape(-1) if "num_steps" in record.coords else None
    for it in range(values.shape[0]):
        idx = np.flatnonzero(present[it])
        if idx.size:
            # only a pass that ran its last step ends at the clean level; an interrupted one's next level is unknown
            ended = planned is None or planned.size != values.shape[0] or planned[it] <= 0 \
                or steps[idx[-1]] >= planned[it] - 1
            out[it, idx[-1]] = clean if ended else np.nan
            if len(idx) > 1:
                out[it, idx[:-1]] = values[it, idx[1:]]
    return coef.copy(data=out)


# ----------------------------------------------------------------------------------------------------------------
# the noise-swap experiment (second finding)
# ----------------------------------------------------------------------------------------------------------------
def follow_fraction(
    mixed: xr.DataArray,
    a: xr.DataArray,
    b: xr.DataArray,
    *,
    sum_over: Sequence[str] = ("channel",),
    edges=None,
    num_bands: int = 6,
) -> xr.DataArray:
    """Per band, how much of ``mixed`` follows ``a`` rather than ``b``.

    ``lambda_k = Re <M - B, A - B>_k / ||A - B||^2_k``, inner products over the FFT bins of band ``k`` (and over
    ``sum_over`` dims): the least-squares coefficient of ``M ~ B + lambda (A - B)``. 1 means band ``k`` of the
    mixed result is that of ``a``, 0 that of ``b``. Where ``a`` and ``b`` agree in band ``k`` (identical noise
    in that band: ``||A - B||_k^2 <= (64 eps)^2 (||A||_k^2 + ||B||_k^2)``, ``eps`` of the inputs' float precision)
    ``lambda_k`` is undefined and returned as NaN.

    Parameters
    ----------
    mixed, a, b
        Arrays with ``(frame, height, width)`` and otherwise broadcast-compatible dims (e.g. the final latents of
        the three runs, or their ``x0_pred`` at every step).
    sum_over, edges, num_bands
        Summed dims and band definition.

    Returns
    -------
    xarray.DataArray
        dims of the broadcast inputs without ``(frame, height, width)`` and ``sum_over``, plus ``band``.
    """
    for x in (mixed, a, b):
        _check_video(x)
    mixed, a, b = xr.broadcast(mixed, a, b)
    da_ = (a - b).transpose(*mixed.dims)
    dm = (mixed - b).transpose(*mixed.dims)
    s_ab, other = _spectrum(da_)
    s_mb, _ = _spectrum(dm)
    edges, masks = _band_setup(tuple(s_ab.shape[-3:]), edges, num_bands)
    num = _band_reduce((s_mb * s_ab.conj()).real.numpy(), masks)
    den = _band_reduce((s_ab.abs() ** 2).numpy(), masks)
    s_a, _ = _spectrum(a.transpose(*mixed.dims))
    s_b, _ = _spectrum(b.transpose(*mixed.dims))
    ref = _band_reduce((s_a.abs() ** 2 + s_b.abs() ** 2).numpy(), masks)
    summed = [d for d in sum_over if d in other]
    num_sum, den_sum, ref_sum = (xr.DataArray(v, dims=(*other, "band")).sum(summed, skipna=False)
                                 for v in (num, den, ref))
    # Where A and B agree in band k, lambda_k is undefined: ||A - B||_k^2 at round-off level, relative to
    # ||A||_k^2 + ||B||_k^2, turned 0/0 into NaN and round-off/round-off into numbers like 1e15. Undefined
    # (NaN) below (64 eps)^2 of that, eps of the inputs' precision (a - b is formed in it).
    dtypes = [x.dtype for x in (a, b) if np.issubdtype(x.dtype, np.floating)]
    eps = float(np.finfo(np.result_type(*dtypes)).eps) if dtypes else float(np.finfo(np.float64).eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (num_sum / den_sum).where(den_sum > (64 * eps) ** 2 * ref_sum)
    out = out.assign_coords({**_keep_coords(mixed, (*_ST, *summed)), **_band_coords(edges)})
    out.name = "follow_fraction"
    out.attrs = {"long_name": "share of each band following the low-frequency noise A (1) vs B (0)", "units": "1"}
    return out
