"""Spatio-temporal spectral core: FreeInit's low-pass filters, noise reinitialisation and frequency bands.

All kernels take torch tensors shaped ``(..., frame, height, width)``; any leading dims (batch, channel, …) are
kept. Frequencies are normalised as in the FreeInit paper and its two public implementations: along each axis of
size ``n`` the normalised frequency is ``f = 2 * k / n`` for the FFT bin ``k`` (``torch.fft.fftfreq(n) * 2``), so
the Nyquist frequency is 1. The filters use the squared radius

.. math::  d^2 = \\left(\\frac{d_s}{d_t} f_t\\right)^2 + f_h^2 + f_w^2

where ``d_s`` is the spatial and ``d_t`` the temporal cut-off (both in (0, 1]).

Masks are returned in ``torch.fft.fftn`` order (zero frequency at index 0), not fftshift-ed. For even sizes this
is exactly ``ifftshift`` of the masks the authors' code and diffusers build (their grid ``2 t / T - 1`` on the
shifted axis equals ``2 * fftfreq(T)``); for odd sizes their grid is off by half a bin and their mask is not
symmetric under ``f -> -f``, so taking the real part of the inverse FFT silently changes their filter. Ours is
exactly symmetric for every size, so the filtered latent's spectrum is exactly ``mask * spectrum``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from freeinit_lab._checks import require_int

__all__ = [
    "FILTER_METHODS",
    "check_filter",
    "lowpass_filter",
    "apply_lowpass",
    "reinit_noise",
    "variance_preserving_weights",
    "reinit_noise_variance_preserving",
    "normalized_frequencies",
    "frequency_radius",
    "default_band_edges",
    "band_index",
    "band_masks",
    "band_power",
    "band_counts",
    "temporal_spectrum",
    "spatial_spectrum",
]

FILTER_METHODS = ("gaussian", "butterworth", "ideal", "box")
_FFT_DIMS = (-3, -2, -1)
_MIN_CUTOFF = 1e-150  # cut-offs are computed at no less than this (see _cached_mask)


# ----------------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------------
def _video_shape(shape: Sequence[int] | torch.Size) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as exc:
        raise TypeError(f"shape must be a sequence of ints like (batch, channel, frame, height, width); got {shape!r}") from exc
    if len(shape) < 3:
        raise ValueError(
            f"shape {shape} has rank {len(shape)}; FreeInit filters act on the last three dims (frame, height, "
            "width), so pass at least a 3-D shape, e.g. latents.shape for a (batch, channel, frame, height, width) "
            "latent (for a (batch, frame, channel, ...) latent, permute it to put frames third from last first)"
        )
    if any(s < 1 for s in shape):
        raise ValueError(f"every size in shape must be >= 1; got {shape}")
    return shape


def _check_video(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor shaped (..., frame, height, width); got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"{name} has rank {x.dim()} (shape {tuple(x.shape)}); pass a tensor shaped (..., frame, height, width) "
            "— for a single image add a frame dim with x.unsqueeze(-3)"
        )
    if x.is_complex():
        raise TypeError(f"{name} must be real-valued; got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values; check the latents (e.g. a diverged sampler or fp16 overflow)")


def _check_dims(x: torch.Tensor, dims: Sequence[str] | None, name: str = "x") -> None:
    """Refuse a tensor whose named dims do not end with (frame, height, width).

    The kernels transform the last three axes; they cannot tell frames from channels by size. When the caller
    names the axes (``dims=``), a tensor laid out e.g. ``(batch, frame, channel, height, width)`` (CogVideoX,
    Stable Video Diffusion) is refused with the permutation that fixes it instead of being read as if its
    frames were channels. ``dims=None`` means "already (..., frame, height, width)", as before.
    """
    if dims is None:
        return
    if isinstance(dims, str):
        dims = tuple(dims.replace(",", " ").split())
    dims = tuple(str(d) for d in dims)
    if len(dims) != x.dim():
        raise ValueError(f"dims={dims} names {len(dims)} axes but {name} has shape {tuple(x.shape)}; name every axis")
    if len(set(dims)) != len(dims):
        raise ValueError(f"dims={dims} repeats a name; name each axis of {name} once")
    target = ("frame", "height", "width")
    missing = [d for d in target if d not in dims]
    if missing:
        raise ValueError(
            f"dims={dims} has no {', '.join(repr(d) for d in missing)} axis; the spectral tools transform the "
            "(frame, height, width) axes of a video, so name them (a single image: add a frame axis with "
            "x.unsqueeze(-3))"
        )
    if dims[-3:] != target:
        order = [i for i, d in enumerate(dims) if d not in target] + [dims.index(d) for d in target]
        wanted = tuple(dims[i] for i in order)
        raise ValueError(
            f"{name} is laid out {dims}, but the spectral tools transform the last three axes, which must be "
            f"(frame, height, width); otherwise frames are read as channels. Permute it first: "
            f"{name}.permute{tuple(order)} gives {wanted}"
        )


def _check_cutoff(value: float, name: str) -> float:
    if isinstance(value, (bool, np.bool_)):  # float(True) is 1.0: a flag passed where a cut-off belongs
        raise TypeError(f"{name} must be a number in (0, 1]; got the boolean {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number in (0, 1]; got {value!r}") from exc
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(
            f"{name}={value} is outside (0, 1]: cut-offs are normalised frequencies (Nyquist = 1); the paper's "
            f"default is 0.25. A cut-off of 0 would keep nothing of the diffused latent (plain sampling: use "
            "num_iters=1 instead)"
        )
    return value


# ----------------------------------------------------------------------------------------------------------------
# frequency grids
# ----------------------------------------------------------------------------------------------------------------
def normalized_frequencies(n: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised frequencies ``2 * fftfreq(n)`` of an axis of size ``n`` in FFT order (Nyquist = 1).

    Examples
    --------
    >>> normalized_frequencies(4)
    tensor([ 0.0000,  0.5000, -1.0000, -0.5000], dtype=torch.float64)
    """
    return torch.fft.fftfreq(int(n), dtype=dtype) * 2


def _squared_radius(shape3: tuple[int, int, int], temporal_scale: float) -> torch.Tensor:
    ft, fh, fw = (normalized_frequencies(n) for n in shape3)
    # a huge scale (d_s / d_t overflows for a tiny d_t) must leave the f_t = 0 bins at 0, not inf * 0 = NaN
    scaled_ft = torch.where(ft == 0, torch.zeros_like(ft), temporal_scale * ft)
    return (
        scaled_ft[:, None, None] ** 2
        + fh[None, :, None] ** 2
        + fw[None, None, :] ** 2
    )


def frequency_radius(shape: Sequence[int], d_s: float = 1.0, d_t: float = 1.0) -> torch.Tensor:
    """Normalised spatio-temporal frequency radius of every FFT bin, ``d`` in the module docstring.

    Parameters
    ----------
    shape
        Shape whose last three entries are (frame, height, width).
    d_s, d_t
        The temporal axis is scaled by ``d_s / d_t`` exactly as in FreeInit's filters; the default (1, 1) gives
        the isotropic radius.

    Returns
    -------
    torch.Tensor
        float64, shape ``shape[-3:]``, FFT order.
    """
    shape3 = _video_shape(shape)[-3:]
    d_s, d_t = float(d_s), float(d_t)
    if not (math.isfinite(d_s) and math.isfinite(d_t) and d_t != 0):
        raise ValueError(
            f"frequency_radius needs finite d_s and a finite non-zero d_t (the temporal axis is scaled by d_s / d_t); "
            f"got d_s={d_s}, d_t={d_t}"
        )
    return _squared_radius(shape3, d_s / d_t).sqrt()


# ----------------------------------------------------------------------------------------------------------------
# FreeInit low-pass filters
# ----------------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _cached_mask(
    shape3: tuple[int, int, int],
    method: str,
    d_s: float,
    d_t: float,
    order: float,
    legacy_ideal_threshold: bool,
    device: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    # Vectorised: the squared radius is a sum of three 1-D terms (computed in float64, exactly as the reference
    # implementations' Python floats), broadcast once into the (F, H, W) grid in the working precision; the
    # element-wise work then runs in place. About 0.07 ms for 16x64x64 on one CPU thread in float32.
    work = torch.float64 if dtype == torch.float64 else torch.float32
    # Cut-offs below _MIN_CUTOFF are computed at it: 1 / d_s^2 and d_s / d_t stay finite (a tiny d_s would raise
    # ZeroDivisionError, or give inf * 0 = NaN at the DC bin). At _MIN_CUTOFF the Gaussian, ideal and box masks
    # already keep the DC bin (for d_t: the f_t = 0 plane) alone, exactly; a Butterworth mask of order >= 0.05
    # is below 1e-14 elsewhere on grids up to 1000 bins per axis (float32 masks saturate to 0 far earlier).
    d_s, d_t = max(d_s, _MIN_CUTOFF), max(d_t, _MIN_CUTOFF)
    ft, fh, fw = (normalized_frequencies(n) for n in shape3)
    if method == "box":
        eps = 1e-12
        mask = (
            (ft.abs() <= d_t + eps)[:, None, None]
            & (fh.abs() <= d_s + eps)[None, :, None]
            & (fw.abs() <= d_s + eps)[None, None, :]
        ).to(work)
    elif method == "gaussian":
        # exp(-d^2 / (2 d_s^2)) factorises into three 1-D exponentials
        c = -1.0 / (2 * d_s**2)
        et, eh, ew = (torch.exp(c * f * f).to(work) for f in ((d_s / d_t) * ft, fh, fw))
        mask = (et[:, None, None] * eh[None, :, None]) * ew[None, None, :]
    else:
        scale = 1.0 / d_s**2 if method == "butterworth" else 1.0
        tt = ((d_s / d_t) * ft) ** 2 * scale
        # the ideal filter's threshold test stays in float64 so bins on the edge are decided exactly
        prec = work if method == "butterworth" else torch.float64
        d2 = (tt[:, None, None] + (fh**2 * scale)[None, :, None]).to(prec) + (fw**2 * scale).to(prec)[None, None, :]
        if method == "butterworth":  # 1 / (1 + q^order) with q = d^2 / d_s^2
            if order == 4.0:  # the paper's order: two in-place squarings instead of a general pow
                q = d2.mul_(d2)
                q = q.mul_(q)
            elif order == 2.0:
                q = d2.mul_(d2)
            else:
                q = d2.pow_(order)
            mask = q.add_(1.0).reciprocal_()
        else:  # ideal
            threshold = 2 * d_s if legacy_ideal_threshold else d_s**2
            mask = (d2 <= threshold + 1e-12).to(work)
    if not _is_symmetric(mask):
        # Vectorised pow/exp kernels may round the same input differently at different memory positions (SIMD
        # body vs scalar tail), leaving H(k) and H(-k) one ulp apart; averaging with the mirror image makes the
        # mask exactly symmetric again (it changes nothing where it already was).
        mask = 0.5 * (mask + _mirror(mask))
    mask = mask.to(device=device, dtype=dtype)
    mask.requires_grad_(False)
    return mask


def check_filter(method: str, d_s: float, d_t: float, order: float) -> tuple[str, float, float, float]:
    """Validate low-pass filter settings; return them as ``(method, d_s, d_t, order)`` plain values.

    ``order`` is returned as 0.0 for the methods that ignore it, so equal filters compare equal.

    Raises
    ------
    ValueError, TypeError
        For an unknown method, a cut-off outside (0, 1] or a non-positive Butterworth order, saying what to pass.
    """
    if not isinstance(method, str) or method not in FILTER_METHODS:
        raise ValueError(f"unknown filter method {method!r}; choose one of {', '.join(FILTER_METHODS)}")
    d_s = _check_cutoff(d_s, "d_s")
    d_t = _check_cutoff(d_t, "d_t")
    if method == "butterworth":
        if isinstance(order, (bool, np.bool_)):
            raise TypeError(f"order must be a positive number (the paper uses 4); got the boolean {order!r}")
        try:
            order = float(order)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"order must be a positive number (the paper uses 4); got {order!r}") from exc
        if not order > 0:
            raise ValueError(f"order={order} must be > 0 for the butterworth filter (the paper uses 4)")
    else:
        order = 0.0  # irrelevant: keeps the cache key canonical
    return method, d_s, d_t, order


def lowpass_filter(
    shape: Sequence[int] | torch.Size,
    method: str = "butterworth",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    legacy_ideal_threshold: bool = False,
) -> torch.Tensor:
    """FreeInit's spatio-temporal low-pass mask ``H`` in ``torch.fft.fftn`` order.

    With ``d^2`` the squared normalised radius of the module docstring:

    - ``"gaussian"``: ``H = exp(-d^2 / (2 d_s^2))``
    - ``"butterworth"``: ``H = 1 / (1 + (d^2 / d_s^2)^order)``
    - ``"ideal"``: ``H = [d^2 <= d_s^2]``, a ball of radius ``d_s``. The authors' code and diffusers compare
      ``d^2 <= 2 d_s`` instead (a typo: for ``d_s = 0.25`` they keep radius 0.707, about 18.5 % of the bins of a
      16x64x64 latent instead of 0.75 %). ``legacy_ideal_threshold=True`` reproduces that threshold.
    - ``"box"``: ``H = [|f_t| <= d_t and |f_h| <= d_s and |f_w| <= d_s]``, a symmetric box with temporal
      half-width ``d_t`` and spatial half-width ``d_s`` on each spatial axis. (The authors' box derives the
      half-width from the height and reuses it for the width, which is wrong for non-square latents, and its
      index range is one bin lopsided; not reproduced.)

    Parameters
    ----------
    shape
        Shape of the latent, ``(..., frame, height, width)``; only the last three sizes define the mask.
    method
        One of ``"gaussian"``, ``"butterworth"``, ``"ideal"``, ``"box"``.
    d_s, d_t
        Spatial and temporal normalised cut-off frequencies in (0, 1] (paper default 0.25).
    order
        Butterworth order ``n`` (> 0; the paper uses 4). Ignored by the other methods.
    device, dtype
        Where and how the mask is returned.
    legacy_ideal_threshold
        Use the reference implementations' ``d^2 <= 2 d_s`` for ``"ideal"``.

    Returns
    -------
    torch.Tensor
        Mask with values in [0, 1], exactly symmetric under ``f -> -f``, broadcast (``expand``-ed) to ``shape``.
        Masks are built once per (shape[-3:], parameters, device, dtype) and cached; every call returns a fresh
        copy of the cached (frame, height, width) mask, so editing the result in place never changes a later
        call (or a later FreeInit run on the same grid). To edit every element of an expanded result, take
        ``mask.contiguous()`` first.

    Examples
    --------
    >>> mask = lowpass_filter((1, 4, 16, 32, 32), "gaussian", d_s=0.25, d_t=0.25)
    >>> tuple(mask.shape), float(mask[0, 0, 0, 0, 0])
    ((1, 4, 16, 32, 32), 1.0)
    """
    shape = _video_shape(shape)
    method, d_s, d_t, order = check_filter(method, d_s, d_t, order)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise TypeError(f"dtype must be a real floating torch dtype (e.g. torch.float32); got {dtype!r}")
    # bool() would read the string "False" as True: the reference codes' radius-0.707 typo instead of d_s
    legacy = legacy_ideal_threshold
    if not (isinstance(legacy, (bool, np.bool_)) or (isinstance(legacy, (int, np.integer)) and legacy in (0, 1))):
        raise TypeError(f"legacy_ideal_threshold must be True or False; got {legacy!r}")
    mask = _cached_mask(shape[-3:], method, d_s, d_t, order, bool(legacy) and method == "ideal", str(device), dtype)
    # a copy: the cached mask is shared by every later call on this grid, so it must never leave this module
    return mask.clone().expand(shape)


def _core_mask(lowpass: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Drop broadcast (expanded or size-1) leading dims of a mask and check it fits ``shape``."""
    if not isinstance(lowpass, torch.Tensor):
        raise TypeError("lowpass must be a torch.Tensor mask, e.g. from freeinit_lab.lowpass_filter(latents.shape)")
    if lowpass.dim() < 3 or tuple(lowpass.shape[-3:]) != tuple(shape[-3:]):
        raise ValueError(
            f"lowpass mask of shape {tuple(lowpass.shape)} does not match the latent's (frame, height, width) "
            f"= {tuple(shape[-3:])}; build it with lowpass_filter(latents.shape, ...)"
        )
    if lowpass.is_complex():
        raise TypeError(f"lowpass must be a real mask; got dtype {lowpass.dtype}")
    given = tuple(lowpass.shape)
    while lowpass.dim() > 3 and (lowpass.shape[0] == 1 or lowpass.stride(0) == 0):
        lowpass = lowpass[0]
    try:
        fits = torch.broadcast_shapes(lowpass.shape, shape) == torch.Size(shape)
    except RuntimeError:
        fits = False
    if not fits:
        # the mask broadcasts *to* the latent, never enlarges it: the result has the latent's shape
        raise ValueError(
            f"lowpass mask shape {given} does not broadcast to the latent's shape {tuple(shape)}; build it with "
            "lowpass_filter(latents.shape, ...) or pass the (frame, height, width) mask"
        )
    if lowpass.is_floating_point() and not bool(torch.isfinite(lowpass).all()):
        raise ValueError("lowpass mask contains NaN or inf values; build it with lowpass_filter(latents.shape, ...)")
    return lowpass


def _mirror(mask: torch.Tensor) -> torch.Tensor:
    """``mask(-f)`` on the last three (FFT-order) axes."""
    mirrored = mask
    for dim in _FFT_DIMS:
        n = mask.shape[dim]
        index = (-torch.arange(n, device=mask.device)) % n
        mirrored = mirrored.index_select(dim, index)
    return mirrored


def _is_symmetric(mask: torch.Tensor) -> bool:
    """Whether ``mask(f) == mask(-f)`` exactly on the last three (FFT-order) axes."""
    return bool(torch.equal(_mirror(mask), mask))


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _filter(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multiply the spectrum of real ``x`` by ``mask`` and transform back (real part)."""
    if _is_symmetric(mask):
        # A real mask symmetric under f -> -f keeps the spectrum Hermitian: the half-spectrum FFT is exact and
        # about twice as fast as the full complex one.
        half = mask[..., : x.shape[-1] // 2 + 1]
        spectrum = torch.fft.rfftn(x, dim=_FFT_DIMS)
        return torch.fft.irfftn(spectrum * half, s=x.shape[-3:], dim=_FFT_DIMS)
    spectrum = torch.fft.fftn(x, dim=_FFT_DIMS)
    return torch.fft.ifftn(spectrum * mask, dim=_FFT_DIMS).real


def apply_lowpass(x: torch.Tensor, lowpass: torch.Tensor, *, dims: Sequence[str] | None = None) -> torch.Tensor:
    """Low-pass ``x`` with a mask in FFT order: ``real(IFFT3D(FFT3D(x) * H))``.

    Parameters
    ----------
    x
        Real floating tensor ``(..., frame, height, width)`` (an integer one is refused: cast it with ``x.float()``).
    lowpass
        Mask ``H`` from :func:`lowpass_filter` (or any real mask in FFT order broadcastable to ``x``). The high
        pass of ``x`` is ``x - apply_lowpass(x, H)``.
    dims
        Optional names of ``x``'s axes, e.g. ``("batch", "channel", "frame", "height", "width")``; a tensor whose
        last three are not (frame, height, width) is refused with the permutation that fixes it.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``x``; computed in float32 (float64 for float64 input).
    """
    _check_video(x, "x")
    _check_floating(x, "x")
    _check_dims(x, dims, "x")
    mask = _core_mask(lowpass, x.shape)
    work = _work_dtype(x.dtype)
    out = _filter(x.to(work), mask.to(device=x.device, dtype=work))
    return out.to(x.dtype)


def _check_floating(x: torch.Tensor, name: str) -> None:
    """Refuse an integer or bool tensor where the result comes back in the input's dtype (it would be truncated)."""
    if not x.is_floating_point():
        raise TypeError(
            f"{name} has dtype {x.dtype}; the filtered result is returned in the input's dtype, which would truncate "
            f"it: pass {name}.float()"
        )


def _check_mix_inputs(diffused: torch.Tensor, noise: torch.Tensor, dims: Sequence[str] | None = None) -> None:
    """Both inputs of a frequency mix are real floating videos of one shape; the error says how to draw matching
    noise."""
    _check_video(diffused, "diffused")
    _check_video(noise, "noise")
    _check_floating(diffused, "diffused")
    _check_floating(noise, "noise")
    _check_dims(diffused, dims, "diffused")
    if diffused.shape != noise.shape:
        raise ValueError(
            f"diffused {tuple(diffused.shape)} and noise {tuple(noise.shape)} must have the same shape; draw the "
            "noise with torch.randn(diffused.shape, generator=...)"
        )


def reinit_noise(
    diffused: torch.Tensor, noise: torch.Tensor, lowpass: torch.Tensor, *, dims: Sequence[str] | None = None
) -> torch.Tensor:
    """FreeInit's noise reinitialisation: low frequencies of ``diffused``, high frequencies of ``noise``.

    .. math::  z'_T = \\mathrm{IFFT3D}(\\mathrm{FFT3D}(z_T) H + \\mathrm{FFT3D}(\\eta)(1 - H))

    computed as ``eta + IFFT3D(FFT3D(z_T - eta) H)`` — the same linear map with one forward transform instead of
    two, and a half-spectrum (``rfftn``) transform when ``H`` is symmetric (always for
    :func:`lowpass_filter` masks). Diffusers' ``_apply_freq_filter`` takes the real part of the full inverse
    transform; for symmetric masks both agree to float rounding.

    Parameters
    ----------
    diffused
        ``z_T``: the previous pass's clean latent diffused to the last training timestep,
        ``(..., frame, height, width)``.
    noise
        ``eta``: fresh Gaussian noise of the same shape.
    lowpass
        Mask ``H`` in FFT order from :func:`lowpass_filter`.
    dims
        Optional names of the inputs' axes, e.g. ``("batch", "channel", "frame", "height", "width")``. The mix
        transforms the last three axes and cannot tell frames from channels by size: name the axes and a
        ``(batch, frame, channel, height, width)`` latent (CogVideoX, SVD) is refused with the permutation to
        apply instead of being mixed along the wrong axes.

    Returns
    -------
    torch.Tensor
        The reinitialised latent, computed in float32 (float64 for float64 input) and returned in the dtype of
        ``diffused``.

    Examples
    --------
    >>> z = torch.randn(1, 8, 4, 16, 16)  # CogVideoX order: (batch, frame, channel, height, width)
    >>> reinit_noise(z, torch.randn_like(z), lowpass_filter(z.shape),
    ...              dims=("batch", "frame", "channel", "height", "width"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: diffused is laid out ('batch', 'frame', 'channel', 'height', 'width'), ... diffused.permute(0, 2, 1, 3, 4) ...
    """
    _check_mix_inputs(diffused, noise, dims)
    mask = _core_mask(lowpass, diffused.shape)
    work = _work_dtype(diffused.dtype)
    z = diffused.to(work)
    eta = noise.to(device=diffused.device, dtype=work)
    mixed = eta + _filter(z - eta, mask.to(device=diffused.device, dtype=work))
    return mixed.to(diffused.dtype)


def variance_preserving_weights(lowpass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-frequency weights of the variance-preserving frequency mix: ``w_low² + w_high² = 1`` in every bin.

    FreeInit mixes with ``H`` and ``1 - H``; for a soft mask a bin of two independent unit-variance inputs then
    has variance ``H² + (1 - H)² < 1`` (0.5 where ``H = 0.5``) — the "variance decay" FreqPrior (arXiv 2502.03496)
    criticises. Normalising both weights by ``sqrt(H² + (1 - H)²)``,

    .. math::  w_\mathrm{low} = \frac{H}{\sqrt{H^2 + (1-H)^2}}, \qquad
               w_\mathrm{high} = \frac{1 - H}{\sqrt{H^2 + (1-H)^2}},

    keeps unit variance everywhere and the same low/high ratio ``H / (1 - H)`` as FreeInit's mix. For a binary
    mask (``ideal``, ``box``) the weights equal ``H`` and ``1 - H``: both mixes coincide. ``H² + (1 - H)² >= 1/2``,
    so the division is always safe.

    Parameters
    ----------
    lowpass
        Mask ``H`` in FFT order with values in [0, 1] (:func:`lowpass_filter`).

    Returns
    -------
    (w_low, w_high)
        Two tensors of the mask's shape and dtype (float32 for non-float masks), FFT order, symmetric under
        ``f -> -f`` when ``H`` is.

    Examples
    --------
    >>> H = lowpass_filter((8, 16, 16), "gaussian", 0.25, 0.25)
    >>> w_low, w_high = variance_preserving_weights(H)
    >>> bool(torch.allclose(w_low**2 + w_high**2, torch.ones(())))
    True
    """
    if not isinstance(lowpass, torch.Tensor):
        raise TypeError("lowpass must be a torch.Tensor mask, e.g. from freeinit_lab.lowpass_filter(latents.shape)")
    if lowpass.is_complex():
        raise TypeError(f"lowpass must be a real mask; got dtype {lowpass.dtype}")
    h = lowpass if lowpass.dtype.is_floating_point else lowpass.to(torch.float32)
    if bool(((h < 0) | (h > 1) | ~torch.isfinite(h)).any()):
        raise ValueError("lowpass mask values must lie in [0, 1] (a FreeInit low-pass filter)")
    norm = (h * h + (1 - h) * (1 - h)).sqrt()
    return h / norm, (1 - h) / norm


def reinit_noise_variance_preserving(
    diffused: torch.Tensor, noise: torch.Tensor, lowpass: torch.Tensor, *, dims: Sequence[str] | None = None
) -> torch.Tensor:
    r"""Variance-preserving noise reinitialisation: FreeInit's mix with weights whose squares sum to one.

    .. math::  z'_T = \mathrm{IFFT3D}(\mathrm{FFT3D}(z_T)\, w_\mathrm{low} + \mathrm{FFT3D}(\eta)\, w_\mathrm{high})

    with ``w_low, w_high`` from :func:`variance_preserving_weights`. If ``z_T`` and ``eta`` are independent and
    have per-bin variances ``P(k)`` and 1, the result has per-bin variance ``w_low² P(k) + w_high²`` — exactly 1
    wherever ``P(k) = 1`` (FreeInit's :func:`reinit_noise` gives ``H² P(k) + (1 - H)²``). Same inputs, shapes and
    dtypes as :func:`reinit_noise` (``dims`` included); equal to it for binary masks.
    """
    _check_mix_inputs(diffused, noise, dims)
    mask = _core_mask(lowpass, diffused.shape)
    work = _work_dtype(diffused.dtype)
    w_low, w_high = variance_preserving_weights(mask.to(device=diffused.device, dtype=work))
    z = diffused.to(work)
    eta = noise.to(device=diffused.device, dtype=work)
    mixed = _filter(z, w_low) + _filter(eta, w_high)
    return mixed.to(diffused.dtype)


# ----------------------------------------------------------------------------------------------------------------
# radial frequency bands
# ----------------------------------------------------------------------------------------------------------------
def default_band_edges(shape: Sequence[int], num_bands: int = 6, temporal_scale: float = 1.0) -> np.ndarray:
    """Default radial band edges: the lowest bins first, then log-spaced bands up to the highest frequency.

    Band 0 is ``[0, r_1]``, the DC bin and the nearest ring of bins (``r_1`` is the smallest non-zero radius of
    the grid, ``2 / n`` for the largest axis ``n > 1``), and bands 1…K-1 split ``(r_1, r_max]`` into
    log-spaced shells (ratio ``(r_max / r_1)^(1 / (K - 1))``), since natural video power falls roughly as a power
    law of frequency. This separates "the lowest bins", where the initialization gap lives, from the rest at any
    latent size. On small grids a log-spaced shell can fall between two radii of the grid and hold no bin (e.g.
    band 1 of 6 on a 16x8x8 or 4x4x4 grid; up to 3 isotropic bands are never empty on grids of at least 4 bins per axis):
    :func:`band_counts` shows it, and :func:`band_power` (and the band SNR built on it) refuses such edges,
    naming the empty bands; use fewer bands. Radii are the isotropic normalised
    radius of :func:`frequency_radius` (temporal axis scaled by ``temporal_scale = d_s / d_t``).

    Returns
    -------
    numpy.ndarray
        ``num_bands + 1`` increasing edges, first 0, last the largest radius on the grid (1 for a grid of a single
        bin, whose largest radius is 0).
    """
    shape3 = _video_shape(shape)[-3:]
    temporal_scale = _check_temporal_scale(temporal_scale)
    # int() would read True as one band and 2.5 as 2: every caller's num_bands is checked here
    num_bands = require_int("num_bands", num_bands, why=" (radial frequency bands)")
    radius = frequency_radius(shape3, d_s=temporal_scale, d_t=1.0)
    r_max = float(radius.max())
    nonzero = radius[radius > 0]
    if num_bands == 1 or nonzero.numel() == 0:
        if num_bands != 1:
            raise ValueError(f"a {shape3} grid has a single frequency bin; use num_bands=1")
        return np.array([0.0, r_max if r_max > 0 else 1.0])  # a 1x1x1 grid: one band [0, 1] around its DC bin
    r_1 = float(nonzero.min())
    if r_1 >= r_max:  # one non-zero radius (e.g. a 1x1x2 grid): the DC bin and that ring
        if num_bands != 2:
            raise ValueError(
                f"a {shape3} grid has only two distinct radii (0 and {r_max:g}), so at most 2 non-empty bands; use "
                "num_bands=1 or 2"
            )
        return np.array([0.0, r_1 / 2, r_max])
    if num_bands == 2:
        return np.array([0.0, r_1, r_max])
    return np.concatenate([[0.0], np.geomspace(r_1, r_max, num_bands)])


def _check_temporal_scale(value) -> float:
    """``temporal_scale`` of the band functions as a finite float (``d_s / d_t`` of the filters; 1 = isotropic)."""
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"temporal_scale must be a number (d_s / d_t of the filters; 1 = isotropic); got {value!r}") from exc
    if not math.isfinite(value):
        raise ValueError(f"temporal_scale={value} must be finite (d_s / d_t of the filters; 1 = isotropic)")
    if value <= 0:
        # the radius squares the scaled temporal frequency, so -s would silently act as s, and 0 would put every
        # temporal frequency at radius 0 (no filter has d_s = 0)
        raise ValueError(f"temporal_scale={value} must be > 0 (d_s / d_t of the filters, both positive; "
                         "1 = isotropic)")
    return value


def _grid_max_radius(shape3: tuple[int, ...], temporal_scale: float) -> float:
    return float(frequency_radius(shape3, d_s=temporal_scale, d_t=1.0).max())


def _check_edges(shape3: tuple[int, ...], edges, temporal_scale: float) -> np.ndarray:
    """Validate band edges against a grid: 1-D, strictly increasing, from 0 to at least the largest radius.

    Edges that stop short of the grid's largest radius would leave the bins beyond the last edge in no band (or,
    bucketed, silently in the last one, whose ``band_hi`` would then be wrong), so they are refused.
    """
    try:
        edges = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"band edges must be a 1-D sequence of radii (floats); got {edges!r}") from exc
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"band edges must be a 1-D sequence of at least two radii; got {edges!r}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"band edges must be finite; got {edges.tolist()}")
    if not np.all(np.diff(edges) > 0):
        raise ValueError(f"band edges must be strictly increasing; got {edges.tolist()}")
    r_max = _grid_max_radius(tuple(shape3), temporal_scale)
    if edges[0] != 0:
        raise ValueError(
            f"band edges must start at 0 so that the bands partition the spectrum; got {edges.tolist()}. Prepend 0."
        )
    if edges[-1] < r_max - 1e-9:
        raise ValueError(
            f"band edges {edges.tolist()} stop short of the largest radius of the {tuple(shape3)} grid, "
            f"{r_max!r} (temporal_scale={temporal_scale:g}): the bins beyond {edges[-1]:g} would belong to no band. "
            f"End the edges at or above {r_max!r} (e.g. append it), or use "
            f"default_band_edges({tuple(shape3)}, num_bands) for this grid"
        )
    return edges


def _resolve_edges(shape3: tuple[int, ...], edges, num_bands: int, temporal_scale: float) -> np.ndarray:
    temporal_scale = _check_temporal_scale(temporal_scale)
    if edges is None:
        return default_band_edges(shape3, num_bands, temporal_scale)
    return _check_edges(shape3, edges, temporal_scale)


@functools.lru_cache(maxsize=64)
def _band_index_cached(shape3: tuple[int, int, int], edges: tuple[float, ...], temporal_scale: float) -> torch.Tensor:
    # validated here too, not only in the public functions: lean callers (the probe's per-step band power) reach
    # the cached index directly, and an unchecked last edge would silently put every higher bin in the last band
    _check_edges(shape3, edges, temporal_scale)
    radius = frequency_radius(shape3, d_s=temporal_scale, d_t=1.0)
    inner = torch.tensor(edges[1:-1], dtype=torch.float64)
    # band k holds edges[k] < r <= edges[k + 1]; band 0 also holds r = 0. A tolerance absorbs rounding of radii
    # that sit exactly on an edge (the default edges are grid radii).
    index = torch.bucketize(radius - 1e-9, inner, right=False)
    return index


def band_index(shape: Sequence[int], edges=None, num_bands: int = 6, temporal_scale: float = 1.0) -> torch.Tensor:
    """Band number (0…K-1) of every FFT bin, shape ``shape[-3:]`` in FFT order. See :func:`band_masks`."""
    shape3 = _video_shape(shape)[-3:]
    edges = _resolve_edges(shape3, edges, num_bands, temporal_scale)
    return _band_index_cached(shape3, tuple(float(e) for e in edges), float(temporal_scale))


def band_masks(shape: Sequence[int], edges=None, num_bands: int = 6, temporal_scale: float = 1.0) -> torch.Tensor:
    """Boolean masks of the radial frequency bands; they partition the spectrum.

    Parameters
    ----------
    shape
        ``(..., frame, height, width)``.
    edges
        Increasing radii starting at 0 and reaching the grid's largest radius; band ``k`` holds bins with
        ``edges[k] < r <= edges[k + 1]`` (band 0 also holds ``r = 0``). ``None`` uses
        :func:`default_band_edges` with ``num_bands`` bands.
    temporal_scale
        Scale of the temporal frequency in the radius (``d_s / d_t`` of the filters; 1 = isotropic).

    Returns
    -------
    torch.Tensor
        bool, shape ``(K, frame, height, width)``, FFT order; every bin is in exactly one band.
    """
    shape3 = _video_shape(shape)[-3:]
    edges = _resolve_edges(shape3, edges, num_bands, temporal_scale)
    index = _band_index_cached(shape3, tuple(float(e) for e in edges), float(temporal_scale))
    return index[None] == torch.arange(len(edges) - 1)[:, None, None, None]


def _half_spectrum_weights(shape3: tuple[int, int, int]) -> torch.Tensor:
    """Multiplicity of each ``rfftn`` bin in the full spectrum (1 for the DC/Nyquist column, else 2)."""
    w = shape3[-1]
    weights = torch.full((w // 2 + 1,), 2.0, dtype=torch.float64)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    return weights


@functools.lru_cache(maxsize=64)
def _band_projection(shape3: tuple[int, int, int], edges: tuple[float, ...], temporal_scale: float) -> torch.Tensor:
    """Matrix (half-spectrum bins, K) whose product with ``|X|^2`` gives the mean power of each band."""
    index = _band_index_cached(shape3, edges, temporal_scale)[..., : shape3[-1] // 2 + 1]
    weights = _half_spectrum_weights(shape3).expand(index.shape)
    k = len(edges) - 1
    proj = torch.zeros(index.numel(), k, dtype=torch.float64)
    proj[torch.arange(index.numel()), index.reshape(-1)] = weights.reshape(-1)
    counts = proj.sum(0)
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(
            f"bands {empty} hold no frequency bin of a {shape3} grid (edges {list(edges)}); use fewer bands or "
            "other edges"
        )
    return proj / counts


def band_counts(shape: Sequence[int], edges=None, num_bands: int = 6, temporal_scale: float = 1.0) -> np.ndarray:
    """Number of full-spectrum FFT bins in each band."""
    return band_masks(shape, edges, num_bands, temporal_scale).sum(dim=(1, 2, 3)).numpy()


def _require_nonempty_bands(shape: Sequence[int], edges=None, num_bands: int = 6, temporal_scale: float = 1.0,
                            *, who: str = "") -> np.ndarray:
    """The resolved band edges of a grid, refused if a band holds no FFT bin (its power would be 0 / 0).

    For studies to call before they sample: :func:`band_power` raises the same only when it first runs. With the
    default edges the message names the most bands this grid allows.
    """
    shape3 = _video_shape(shape)[-3:]
    resolved = _resolve_edges(shape3, edges, num_bands, temporal_scale)
    counts = band_counts(shape3, resolved, temporal_scale=temporal_scale)
    empty = np.flatnonzero(counts == 0).tolist()
    if not empty:
        return resolved
    fix = "use other edges"
    if edges is None:
        fits = [k for k in range(1, int(num_bands)) if _default_bands_fill(shape3, k, temporal_scale)]
        fix = f"use num_bands={max(fits)} or fewer" if fits else fix
    raise ValueError(
        f"{who + ': ' if who else ''}bands {empty} of {len(counts)} hold no frequency bin of a {shape3} grid (edges "
        f"{[round(float(e), 4) for e in resolved]}, bins per band {counts.tolist()}): their power would be 0 / 0; "
        f"{fix}"
    )


def _default_bands_fill(shape3: tuple[int, ...], num_bands: int, temporal_scale: float) -> bool:
    try:
        edges = default_band_edges(shape3, num_bands, temporal_scale)
    except ValueError:
        return False
    return bool((band_counts(shape3, edges, temporal_scale=temporal_scale) > 0).all())


def band_power(
    x: torch.Tensor, edges=None, num_bands: int = 6, temporal_scale: float = 1.0, *, dims: Sequence[str] | None = None
) -> torch.Tensor:
    """Mean power per FFT bin of each radial band, with an ortho-normalised 3D FFT.

    ``P_k = mean_{bins in band k} |FFT3D_ortho(x)|^2``: white noise of unit variance has expected power 1 in
    every band, so ``P_k`` reads directly as "times the power of unit white noise". Computed from the
    half spectrum (``rfftn``) with the bins' multiplicities, which is exact for real ``x``.

    Parameters
    ----------
    x
        Real tensor ``(..., frame, height, width)``.
    edges, num_bands, temporal_scale
        Band definition, see :func:`band_masks`.
    dims
        Optional names of ``x``'s axes; refused unless the last three are (frame, height, width).

    Returns
    -------
    torch.Tensor
        float64, shape ``(..., K)``: the leading dims of ``x`` are kept.
    """
    _check_video(x, "x")
    _check_dims(x, dims, "x")
    shape3 = tuple(x.shape[-3:])
    edges = _resolve_edges(shape3, edges, num_bands, temporal_scale)
    proj = _band_projection(shape3, tuple(float(e) for e in edges), float(temporal_scale)).to(x.device)
    spectrum = torch.fft.rfftn(x.to(_work_dtype(x.dtype)), dim=_FFT_DIMS, norm="ortho")
    power = spectrum.real.double() ** 2 + spectrum.imag.double() ** 2
    return power.reshape(*x.shape[:-3], -1) @ proj


def temporal_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal-only marginal spectrum: mean power over all spatial frequencies for each temporal frequency.

    Returns
    -------
    (freqs, power)
        ``freqs``: normalised temporal frequencies in FFT order, shape ``(frame,)``; ``power``: float64
        ``(..., frame)`` with the ortho-normalised convention of :func:`band_power`.
    """
    _check_video(x, "x")
    spectrum = torch.fft.fftn(x.to(_work_dtype(x.dtype)), dim=_FFT_DIMS, norm="ortho")
    power = (spectrum.abs().double() ** 2).mean(dim=(-2, -1))
    return normalized_frequencies(x.shape[-3]), power


def spatial_spectrum(x: torch.Tensor, num_bins: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial-only marginal spectrum: mean power over all temporal frequencies, binned by spatial radius.

    Parameters
    ----------
    x
        Real tensor ``(..., frame, height, width)``.
    num_bins
        Number of equal-width radial bins on ``[0, sqrt(2)]``; default ``max(height, width) // 2 + 1``.

    Returns
    -------
    (radius, power)
        ``radius``: bin centres (normalised spatial radius, shape ``(num_bins,)``); ``power``: float64
        ``(..., num_bins)`` mean power per bin (NaN for bins with no frequency).
    """
    _check_video(x, "x")
    h, w = x.shape[-2:]
    # int() read 2.5 bins as 2 and True as 1
    num_bins = require_int("num_bins", num_bins, why=" (radial bins of the spatial spectrum)") \
        if num_bins is not None else max(h, w) // 2 + 1
    spectrum = torch.fft.fftn(x.to(_work_dtype(x.dtype)), dim=_FFT_DIMS, norm="ortho")
    power = (spectrum.abs().double() ** 2).mean(dim=-3).reshape(*x.shape[:-3], -1)
    fh, fw = normalized_frequencies(h), normalized_frequencies(w)
    radius = (fh[:, None] ** 2 + fw[None, :] ** 2).sqrt().reshape(-1)
    edges = torch.linspace(0, math.sqrt(2) + 1e-9, num_bins + 1, dtype=torch.float64)
    index = torch.bucketize(radius, edges[1:-1], right=True)
    onehot = torch.zeros(radius.numel(), num_bins, dtype=torch.float64)
    onehot[torch.arange(radius.numel()), index] = 1.0
    counts = onehot.sum(0)
    binned = (power @ onehot) / counts
    centres = (edges[:-1] + edges[1:]) / 2
    return centres, binned
