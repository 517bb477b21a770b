"""Noise swaps (the paper's second finding): which initial frequencies the sample keeps.

The same pipeline runs from three initial noises: ``A``, ``B`` and ``mix = low frequencies of A + high frequencies
of B`` (:func:`freeinit_lab.core.spectral.reinit_noise`); :func:`freeinit_lab.analysis.records.follow_fraction`
measures how much of each band of the mix's result follows ``A`` rather than ``B``. :func:`noise_swap_sweep` does
it for several cut-offs at once, with masks that keep a given share of the lowest FFT bins
(:func:`lowest_bins_mask`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from freeinit_lab.analysis.records import _final_per_pass, follow_fraction
from freeinit_lab.core.dims import SPATIOTEMPORAL_DIMS
from freeinit_lab.core.spectral import _require_nonempty_bands, frequency_radius, lowpass_filter, reinit_noise
from freeinit_lab.hooks.layouts import get_layout
from freeinit_lab.probes.probe import LatentProbe

__all__ = ["noise_swap_experiment", "noise_swap_sweep", "lowest_bins_mask"]


def _generator_copies(generator: Any):
    """A function returning fresh copies of ``generator`` (None, a ``torch.Generator`` or a list of them) at the
    state it has now: every trajectory then gets the same sampler draws (common random numbers)."""
    if generator is None:
        return lambda: None
    single = isinstance(generator, torch.Generator)
    states = [(g.device, g.get_state()) for g in ([generator] if single else list(generator))]

    def copies():
        out = [torch.Generator(device=device).set_state(state) for device, state in states]
        return out[0] if single else out

    return copies


def _check_mask_values(mask: torch.Tensor, name: str) -> None:
    """Refuse a low-pass mask with a value outside ``[0, 1]``: no share of A (``H = 2`` would mix ``2 A - B``)."""
    m = torch.as_tensor(mask)
    if bool(((m < 0) | (m > 1)).any()):
        raise ValueError(
            f"{name} has values outside [0, 1] (from {float(m.min()):.4g} to {float(m.max()):.4g}): a low-pass mask "
            "takes a share of each frequency from noise A and the rest from noise B; build it with "
            "lowest_bins_mask(shape, keep) or freeinit_lab.spectral.lowpass_filter(shape, ...)"
        )


def _batched_generators(generator: Any, n: int, trajectories: int) -> list[torch.Generator] | None:
    """One generator per video of a batched call of ``trajectories`` stacked trajectories of ``n`` videos, video
    ``v`` of every trajectory at the same state: a list of ``n`` is copied per trajectory, a single generator first
    seeds ``n`` per-video ones (a single generator cannot give the stacked trajectories equal draws)."""
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
        generator = [torch.Generator(device=generator.device).manual_seed(s) for s in seeds]
    generator = list(generator)
    if len(generator) != n:
        raise ValueError(f"got a list of {len(generator)} generators for {n} videos; pass one per video or one "
                         "generator")
    copies = _generator_copies(generator)
    return [g for _ in range(trajectories) for g in copies()]


def noise_swap_experiment(
    pipe: Any,
    noise_a: torch.Tensor,
    noise_b: torch.Tensor,
    *,
    lowpass: torch.Tensor | None = None,
    method: str = "butterworth",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    capture: Sequence[str] = ("latents", "x0_pred"),
    **call_kwargs: Any,
) -> xr.Dataset:
    """Run the paper's second-finding experiment: does the result follow the low frequencies of its noise?

    Samples ``pipe`` three times from canonical ``(batch, channel, frame, height, width)`` initial noises: ``a``,
    ``b``, and ``mix = reinit_noise(a, b, lowpass)`` (low frequencies of ``a``, high frequencies of ``b``, the
    FreeInit mix), recording each trajectory with a :class:`~freeinit_lab.LatentProbe`.

    Parameters
    ----------
    pipe
        A diffusers video pipeline with a registered layout (``latents=`` is its initial noise).
    noise_a, noise_b
        Canonical noises of the latent shape.
    lowpass
        A mask with values in [0, 1], e.g. from :func:`freeinit_lab.spectral.lowpass_filter`; default built from
        ``method``, ``d_s``, ``d_t``,
        ``order``.
    capture
        Capture sites recorded for each run.
    **call_kwargs
        Passed to every ``pipe(...)`` call (prompt, steps, size, ``output_type="latent"`` is set for you). A
        ``generator`` is copied at its given state for each of the three calls, so a stochastic sampler (e.g. DDIM
        with ``eta > 0``) makes the same draws in all three and the trajectories differ by their noises alone.

    Returns
    -------
    xarray.Dataset
        The probe record with dim ``trajectory`` (coords ``"a"``, ``"b"``, ``"mix"``) in place of ``iteration``,
        plus ``follow`` = :func:`follow_fraction` of ``mix`` vs ``a``/``b`` for every captured variable
        (``follow_<var>``, dims ``step, batch, band``) and the noises (``noise``, dims ``trajectory, batch,
        channel, frame, height, width``). Attrs ``lowpass_method``, ``d_s``, ``d_t``, ``order`` of the mask built
        from them, or ``lowpass_method="explicit mask"`` and its mean ``lowpass_mean`` when ``lowpass`` is given.
    """

    if noise_a.shape != noise_b.shape or noise_a.dim() != 5:
        raise ValueError(
            f"noise_a {tuple(noise_a.shape)} and noise_b {tuple(noise_b.shape)} must be canonical (batch, channel, "
            "frame, height, width) tensors of the same shape"
        )
    _require_nonempty_bands(noise_a.shape, who="noise_swap_experiment")  # follow_fraction's default bands
    explicit = lowpass is not None
    if explicit:
        _check_mask_values(lowpass, "lowpass")
    if lowpass is None:
        lowpass = lowpass_filter(noise_a.shape, method=method, d_s=d_s, d_t=d_t, order=order)
    mix = reinit_noise(noise_a, noise_b, lowpass)
    layout = get_layout(pipe)
    call_kwargs = {**call_kwargs, "output_type": "latent"}
    generators = _generator_copies(call_kwargs.pop("generator", None))
    with LatentProbe(pipe, capture=tuple(capture)) as probe:
        for noise in (noise_a, noise_b, mix):
            pipe(latents=layout.from_canonical(noise.clone()), generator=generators(), **call_kwargs)
    ds = probe.to_xarray()
    if ds.sizes.get("iteration") != 3:
        raise RuntimeError(f"expected three sampling passes, recorded {ds.sizes.get('iteration')}")
    ds = ds.rename({"iteration": "trajectory"}).assign_coords(trajectory=["a", "b", "mix"])
    noises = torch.stack([noise_a, noise_b, mix]).detach().cpu().float().numpy()
    ds["noise"] = (("trajectory", "batch", "channel", "frame", "height", "width"), noises,
                   {"long_name": "initial noise (canonical)"})
    for var in capture:
        v = ds[var]
        f = follow_fraction(v.sel(trajectory="mix", drop=True), v.sel(trajectory="a", drop=True),
                            v.sel(trajectory="b", drop=True))
        f = f.drop_vars([c for c in f.coords if c not in f.dims and c not in ("band_lo", "band_hi")])
        ds[f"follow_{var}"] = f
        ds[f"follow_{var}"].attrs["long_name"] = f"share of each band of {var} following noise A (low-frequency source)"
    noise_follow = follow_fraction(ds["noise"].sel(trajectory="mix", drop=True), ds["noise"].sel(trajectory="a", drop=True),
                                   ds["noise"].sel(trajectory="b", drop=True))
    ds["follow_noise"] = noise_follow.drop_vars([c for c in noise_follow.coords if c not in noise_follow.dims and c not in ("band_lo", "band_hi")])
    ds["follow_noise"].attrs["long_name"] = "share of each band of the initial noise taken from A"
    if explicit:  # the mask was given: method, d_s, d_t and order did not build it
        ds.attrs.update({"lowpass_method": "explicit mask", "lowpass_mean": float(lowpass.float().mean())})
    else:
        ds.attrs.update({"lowpass_method": method, "d_s": float(d_s), "d_t": float(d_t), "order": float(order)})
    return ds


# ----------------------------------------------------------------------------------------------------------------
# noise swaps at several cut-offs in one batched call
# ----------------------------------------------------------------------------------------------------------------
def lowest_bins_mask(shape: Sequence[int], keep: float) -> torch.Tensor:
    """Binary ("ideal") low-pass mask keeping the ``keep`` share of FFT bins of lowest isotropic frequency radius.

    ``H = 1`` where ``r <= quantile(r, keep)``, with ``r`` the normalised radius of
    :func:`freeinit_lab.spectral.frequency_radius` (``d_s = d_t``): the cut-off is expressed as the share of the
    spectrum taken from the low-frequency noise, as in the paper's "80 % of the high frequencies replaced"
    (``keep = 0.2``). Ties at the threshold radius are kept, so the kept share can be slightly above ``keep``.
    The mask depends only on ``|f|``, so it is symmetric under ``f -> -f`` and a mix stays real.

    Parameters
    ----------
    shape
        ``(..., frame, height, width)``; only the last three sizes matter.
    keep
        Share of bins in (0, 1].

    Returns
    -------
    torch.Tensor
        float32 ``(frame, height, width)`` in ``torch.fft.fftn`` order, values 0 or 1.

    Examples
    --------
    >>> m = lowest_bins_mask((8, 16, 16), 0.2)
    >>> 0.2 <= float(m.mean()) < 0.25
    True
    """

    if isinstance(keep, (bool, np.bool_)) or not isinstance(keep, (int, float, np.integer, np.floating)):
        raise TypeError(f"keep={keep!r} must be a number in (0, 1]: the share of FFT bins taken from the "
                        "low-frequency noise (e.g. 0.2)")
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep} must be in (0, 1]: the share of FFT bins taken from the low-frequency noise")
    radius = frequency_radius(tuple(shape)[-3:]).double()
    cut = torch.quantile(radius.flatten(), float(keep))
    return (radius <= cut + 1e-12).float()


def noise_swap_sweep(
    pipe: Any,
    noise_a: torch.Tensor,
    noise_b: torch.Tensor,
    keep: Sequence[float] | float = (0.05, 0.2, 0.5),
    *,
    masks: Sequence[torch.Tensor] | None = None,
    capture: Sequence[str] = ("latents", "x0_pred"),
    batched: bool = True,
    edges=None,
    num_bands: int = 6,
    **call_kwargs: Any,
) -> xr.Dataset:
    """The noise-swap experiment (:func:`noise_swap_experiment`) at several cut-offs, sampling ``A`` and ``B`` once.

    For each cut-off ``c`` the initial noise ``mix_c = reinit_noise(A, B, H_c)`` keeps the low frequencies of
    ``A`` and the high frequencies of ``B``. ``A``, ``B`` and every ``mix_c`` are sampled (in one pipeline call
    with all of them stacked along ``batch`` when ``batched``, which any pipeline taking a batch of ``latents=``
    without a prompt list allows, e.g. the embedded default; otherwise one call each) and recorded with a
    :class:`~freeinit_lab.LatentProbe`.

    Parameters
    ----------
    pipe
        A diffusers video pipeline with a registered layout.
    noise_a, noise_b
        Canonical ``(batch, channel, frame, height, width)`` noises of the same shape.
    keep
        Cut-offs as the share of FFT bins taken from ``A`` (:func:`lowest_bins_mask`), one or several; ignored when
        ``masks`` is given.
    masks
        Explicit low-pass masks with values in [0, 1] (e.g. :func:`freeinit_lab.spectral.lowpass_filter`), one per
        cut-off; coordinate
        ``keep`` then holds each mask's mean (its share of the spectrum).
    capture
        Capture sites recorded with a :class:`~freeinit_lab.LatentProbe` at every step. An empty tuple records
        nothing per step: the pipeline's own output (``output_type="latent"``) is the result, with far less time
        and memory, and only the final-result variables below are returned.
    batched
        One call for all trajectories (fast) or one call per trajectory.
    edges, num_bands
        Band definition of the ``follow_*`` variables.
    **call_kwargs
        Passed to the pipeline call(s); ``output_type="latent"`` is set for you. A ``generator`` gives every
        trajectory the same sampler draws (a stochastic sampler, e.g. DDIM with ``eta > 0``): copied at its given
        state for each call, or, batched, as one generator per video copied for each trajectory (a single
        generator first seeds the ``batch`` per-video ones).

    Returns
    -------
    xarray.Dataset
        ``<var>`` for each captured variable, dims ``(trajectory, step, batch, channel, frame, height, width)``
        with ``trajectory`` = ``"a"``, ``"b"``, ``"mix 0"``, ``"mix 1"``, … (coord ``keep``: NaN for ``a``/``b``);
        ``noise`` (the initial noises, dims ``trajectory, batch, channel, frame, height, width``);
        ``follow_<var>`` and ``follow_noise`` (:func:`follow_fraction` of each mix vs ``a``/``b``, dims
        ``(cutoff, [step,] batch, band)``, coord ``keep`` on ``cutoff``); with ``latents`` captured or
        ``capture=()``: ``final`` (the results, dims ``trajectory, batch, channel, frame, height, width``),
        ``follow_final`` (``cutoff, batch, band``), ``dist_a``, ``dist_b`` (dims ``cutoff, batch``): RMS distance
        of the mix's result from the results of ``A`` and of ``B``, and ``dist_ab`` (``batch``). Always
        ``noise_dist_a``, ``noise_dist_b``, ``noise_dist_ab``: the same distances of the initial noises, i.e. what
        they would be if the pipeline returned its input (the identity map).

    Examples
    --------
    >>> pipe = load_default_pipeline()  # doctest: +SKIP
    >>> a, b = torch.randn(2, 4, 3, 8, 16, 16, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
    >>> ds = noise_swap_sweep(pipe, a, b, keep=(0.05, 0.2), num_inference_steps=25)  # doctest: +SKIP
    >>> float(ds.dist_a.sel(cutoff=1).mean()) < float(ds.dist_b.sel(cutoff=1).mean())  # doctest: +SKIP
    """

    if noise_a.shape != noise_b.shape or noise_a.dim() != 5:
        raise ValueError(
            f"noise_a {tuple(noise_a.shape)} and noise_b {tuple(noise_b.shape)} must be canonical (batch, channel, "
            "frame, height, width) tensors of the same shape"
        )
    _require_nonempty_bands(noise_a.shape, edges, num_bands, who="noise_swap_sweep")
    explicit = masks is not None
    if masks is None:
        keep = (keep,) if np.ndim(keep) == 0 else keep  # one share is one cut-off (and a string is not split)
        masks = [lowest_bins_mask(noise_a.shape, k) for k in keep]
    masks = [torch.as_tensor(m, dtype=torch.float32) for m in masks]
    if not masks:
        raise ValueError("give at least one cut-off (keep=...) or mask (masks=...)")
    for i, m in enumerate(masks):
        _check_mask_values(m, f"masks[{i}]")
    shares = np.array([float(m.mean()) for m in masks])
    call_dtype = noise_a.dtype  # the pipeline gets the noises in the dtype they came in (e.g. float16)
    noise_a, noise_b = noise_a.float(), noise_b.float()
    mixes = [reinit_noise(noise_a, noise_b, m) for m in masks]
    inits = [noise_a, noise_b, *mixes]
    names = ["a", "b", *[f"mix {i}" for i in range(len(masks))]]
    n = noise_a.shape[0]
    layout = get_layout(pipe)
    call_kwargs = {**call_kwargs, "output_type": "latent"}
    generator = call_kwargs.pop("generator", None)
    capture = tuple(capture)
    if not capture:
        return _final_only_sweep(pipe, layout, inits, names, shares, call_dtype, batched, edges, num_bands,
                                 explicit, call_kwargs, generator)
    with LatentProbe(pipe, capture=tuple(capture)) as probe:
        if batched:
            pipe(latents=layout.from_canonical(torch.cat(inits).to(call_dtype)),
                 generator=_batched_generators(generator, n, len(inits)), **call_kwargs)
        else:
            generators = _generator_copies(generator)
            for x in inits:
                pipe(latents=layout.from_canonical(x.to(call_dtype, copy=True)), generator=generators(), **call_kwargs)
    rec = probe.to_xarray()
    if batched:
        if rec.sizes.get("iteration") != 1:
            raise RuntimeError(f"expected one sampling pass, recorded {rec.sizes.get('iteration')}")
        parts = [rec[list(capture)].isel(iteration=0, batch=slice(i * n, (i + 1) * n)).assign_coords(batch=np.arange(n))
                 for i in range(len(inits))]
        ds = xr.concat(parts, dim="trajectory", coords="minimal", compat="override")
    else:
        if rec.sizes.get("iteration") != len(inits):
            raise RuntimeError(f"expected {len(inits)} sampling passes, recorded {rec.sizes.get('iteration')}")
        ds = rec[list(capture)].rename({"iteration": "trajectory"})
    drop = [c for c in ds.coords if c not in ds.dims and set(ds[c].dims) & {"trajectory", "iteration"}]
    ds = ds.drop_vars(drop + [c for c in ("iteration",) if c in ds.coords])
    ds = ds.assign_coords(trajectory=names, keep=("trajectory", np.r_[np.nan, np.nan, shares]))
    for c in ("timestep", "alpha", "sigma", "alpha_bar"):
        if c in rec.coords and "step" in rec[c].dims:
            ds = ds.assign_coords({c: ("step", rec[c].isel(iteration=0).values)})
    ds["noise"] = (("trajectory", "batch", "channel", "frame", "height", "width"),
                   torch.stack(inits).detach().cpu().numpy(), {"long_name": "initial noise (canonical)"})
    cut = {"cutoff": np.arange(len(masks))}

    def follow_all(var: str) -> xr.DataArray:
        v = ds[var]
        a_, b_ = v.sel(trajectory="a", drop=True), v.sel(trajectory="b", drop=True)
        out = [follow_fraction(v.sel(trajectory=f"mix {i}", drop=True), a_, b_, edges=edges, num_bands=num_bands)
               for i in range(len(masks))]
        out = xr.concat(out, dim="cutoff", coords="minimal", compat="override").assign_coords(cut)
        return out.drop_vars([c for c in out.coords if c not in out.dims and c not in ("band_lo", "band_hi")])

    for var in (*capture, "noise"):
        f = follow_all(var)
        ds[f"follow_{var}"] = f
        ds[f"follow_{var}"].attrs = {"long_name": f"share of each band of {var} following noise A (low-frequency source)",
                                     "units": "1"}
    ds = ds.assign_coords(keep_share=("cutoff", shares, {"long_name": "share of FFT bins taken from noise A"}))
    if "latents" in capture:
        final = _final_per_pass(ds["latents"], "step")
        ds["final"] = final.drop_vars([c for c in final.coords if c not in final.dims and c != "keep"])
        ds["final"].attrs = {"long_name": "result (final latents)", "units": "latent units"}
        ds["follow_final"] = follow_all("final")
        ds["follow_final"].attrs = {"long_name": "share of each band of the result following noise A", "units": "1"}
        ds = _add_distances(ds, ds["final"], len(masks), "result", "")
    ds = _add_distances(ds, ds["noise"], len(masks), "initial noise", "noise_")
    ds.attrs.update({k: v for k, v in rec.attrs.items()})
    ds.attrs["mask"] = "explicit masks" if explicit else "lowest_bins_mask(keep)"
    return ds


def _add_distances(ds: xr.Dataset, v: xr.DataArray, num_cutoffs: int, what: str, prefix: str) -> xr.Dataset:
    """``<prefix>dist_a``, ``dist_b`` (cutoff, batch) and ``dist_ab`` (batch): RMS distances between trajectories."""
    def rms(x, y):
        d = np.sqrt(((x - y) ** 2).mean(("channel", *SPATIOTEMPORAL_DIMS)))
        return d.drop_vars([c for c in d.coords if c not in d.dims])

    va, vb = v.sel(trajectory="a", drop=True), v.sel(trajectory="b", drop=True)
    mixes = xr.concat([v.sel(trajectory=f"mix {i}", drop=True) for i in range(num_cutoffs)], dim="cutoff",
                      coords="minimal", compat="override")
    cut = {"cutoff": np.arange(num_cutoffs)}
    for name, ref, side in (("dist_a", va, "A"), ("dist_b", vb, "B")):
        ds[prefix + name] = rms(mixes, ref).assign_coords(cut)
        ds[prefix + name].attrs = {"long_name": f"RMS({what} of mix - {what} of {side})", "units": "latent units"}
    ds[prefix + "dist_ab"] = rms(va, vb)
    ds[prefix + "dist_ab"].attrs = {"long_name": f"RMS({what} of A - {what} of B)", "units": "latent units"}
    return ds


def _final_only_sweep(pipe, layout, inits, names, shares, call_dtype, batched, edges, num_bands, explicit,
                      call_kwargs, generator=None) -> xr.Dataset:
    """:func:`noise_swap_sweep` without a probe: the pipeline's outputs are the results."""
    from freeinit_lab.hooks.outputs import read_pipeline_output

    def run(x: torch.Tensor, gens: Any) -> torch.Tensor:
        out = read_pipeline_output(pipe(latents=layout.from_canonical(x.to(call_dtype, copy=True)), generator=gens,
                                        **call_kwargs))
        return layout.to_canonical(out).detach().cpu().float()

    n = inits[0].shape[0]
    if batched:
        out = run(torch.cat(inits), _batched_generators(generator, n, len(inits)))
        finals = [out[i * n : (i + 1) * n] for i in range(len(inits))]
    else:
        generators = _generator_copies(generator)
        finals = [run(x, generators()) for x in inits]
    dims = ("trajectory", "batch", "channel", "frame", "height", "width")
    coords = {"trajectory": names, "batch": np.arange(n),
              "keep": ("trajectory", np.r_[np.nan, np.nan, shares])}
    ds = xr.Dataset({
        "final": (dims, torch.stack(finals).numpy(), {"long_name": "result (final latents)", "units": "latent units"}),
        "noise": (dims, torch.stack(inits).detach().cpu().numpy(), {"long_name": "initial noise (canonical)"}),
    }, coords=coords)
    cut = {"cutoff": np.arange(len(shares))}
    for var, long in (("final", "result"), ("noise", "initial noise")):
        v = ds[var]
        a_, b_ = v.sel(trajectory="a", drop=True), v.sel(trajectory="b", drop=True)
        out = [follow_fraction(v.sel(trajectory=f"mix {i}", drop=True), a_, b_, edges=edges, num_bands=num_bands)
               for i in range(len(shares))]
        out = xr.concat(out, dim="cutoff", coords="minimal", compat="override").assign_coords(cut)
        out = out.drop_vars([c for c in out.coords if c not in out.dims and c not in ("band_lo", "band_hi")])
        ds[f"follow_{var}"] = out
        ds[f"follow_{var}"].attrs = {"long_name": f"share of each band of the {long} following noise A", "units": "1"}
    ds = ds.assign_coords(keep_share=("cutoff", shares, {"long_name": "share of FFT bins taken from noise A"}))
    ds = _add_distances(ds, ds["final"], len(shares), "result", "")
    ds = _add_distances(ds, ds["noise"], len(shares), "initial noise", "noise_")
    ds.attrs["mask"] = "explicit masks" if explicit else "lowest_bins_mask(keep)"
    return ds
