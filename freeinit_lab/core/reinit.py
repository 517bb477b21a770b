"""FreeInit's reinitialisation step, once, and its settings as one frozen object.

One FreeInit pass after the first (Wu et al., arXiv 2312.07537, Sec. 4.2, Alg. 1) starts from

1. ``z_T = a_T z_0 + b_T eps``: the previous pass's clean latent ``z_0`` diffused to the last training timestep
   ``T`` (:meth:`freeinit_lab.core.schedules.NoiseSchedule.diffuse`), with the first pass's initial noise ``eps``
   (``renoise="same"``) or fresh noise (``renoise="fresh"``);
2. fresh Gaussian noise ``eta`` (drawn *before* any fresh diffusion noise: diffusers' order);
3. ``z'_T = IFFT3D(FFT3D(z_T) H + FFT3D(eta) (1 - H))`` with the low-pass mask ``H``
   (:func:`freeinit_lab.core.spectral.lowpass_filter`), or the variance-preserving weights
   (:func:`freeinit_lab.core.spectral.variance_preserving_weights`) with ``mix="variance_preserving"``.

:func:`reinitialize` does steps 1 and 3 on canonical ``(..., channel, frame, height, width)`` tensors;
:func:`draw_reinit_noise` does step 2 in whatever shape the pipeline draws. The engine and every study call these
two, with a :class:`FreeInitSettings`; the control arms (:mod:`freeinit_lab.core.controls`) build their own ``z_T``
and share step 3, :func:`mix_noise`.

Examples
--------
>>> import torch
>>> from freeinit_lab.core.reinit import FreeInitSettings, draw_reinit_noise, reinitialize
>>> from freeinit_lab.core.schedules import get_schedule
>>> from diffusers import DDIMScheduler
>>> s = FreeInitSettings(num_iters=3, method="gaussian")
>>> schedule = get_schedule(DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012))
>>> g = torch.Generator().manual_seed(0)
>>> z0, eps = torch.randn(1, 4, 8, 16, 16, generator=g), torch.randn(1, 4, 8, 16, 16, generator=g)
>>> eta, noise = draw_reinit_noise(z0.shape, g, renoise=s.renoise, initial_noise=eps)
>>> out = reinitialize(z0, noise, eta, schedule=schedule, settings=s)
>>> tuple(out.latent.shape), bool(torch.allclose(out.signal + out.noise, out.latent))
((1, 4, 8, 16, 16), True)
"""

from __future__ import annotations

import inspect

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from freeinit_lab.core.spectral import (
    apply_lowpass,
    check_filter,
    lowpass_filter,
    reinit_noise,
    reinit_noise_variance_preserving,
    variance_preserving_weights,
)
from freeinit_lab._checks import require_int

__all__ = [
    "FreeInitSettings",
    "Reinitialized",
    "draw_reinit_noise",
    "fast_sampling_steps",
    "mix_noise",
    "reinitialize",
    "resolve_settings",
    "settings_keywords",
]

RENOISE = ("same", "fresh")
MIXES = ("freeinit", "variance_preserving")


def _check_renoise(renoise: Any) -> None:
    if renoise not in RENOISE:
        raise ValueError(f"renoise={renoise!r}; use 'same' (reuse the first initial noise) or 'fresh'.")


def fast_sampling_steps(num_inference_steps: int, num_iters: int) -> list[int]:
    """Steps per pass of FreeInit's coarse-to-fine sampling: ``max(1, int(N / K * (i + 1)))`` for pass ``i``.

    >>> fast_sampling_steps(25, 5)
    [5, 10, 15, 20, 25]
    """
    return [max(1, int(num_inference_steps / num_iters * (i + 1))) for i in range(num_iters)]


@dataclass(frozen=True)
class FreeInitSettings:
    """FreeInit's settings, validated once; the names are the paper's and diffusers' (``enable_free_init``).

    Attributes
    ----------
    num_iters : int
        Sampling passes ``K`` including the plain first one (1 = plain sampling; the paper uses 3-5).
    method : {"butterworth", "gaussian", "ideal", "box"}
        Low-pass filter ``H``.
    d_s, d_t : float
        Spatial and temporal normalised cut-offs in (0, 1] (diffusers' ``spatial_stop_frequency``,
        ``temporal_stop_frequency``).
    order : float
        Butterworth order ``n`` (4 in the paper); ignored by the other filters.
    fast_sampling : bool
        Coarse-to-fine sampling (diffusers' ``use_fast_sampling``): :meth:`steps_per_pass`.
    renoise : {"same", "fresh"}
        Diffusion noise of ``z_0 -> z_T``: the first pass's initial noise (both public codes) or fresh noise.
    mix : {"freeinit", "variance_preserving"}
        Weights ``H, 1 - H`` (public codes) or ones whose squares sum to one per frequency.
    legacy_ideal_threshold : bool
        The reference codes' ``d^2 <= 2 d_s`` threshold of the ideal filter.

    Examples
    --------
    >>> FreeInitSettings(num_iters=3, fast_sampling=True).steps_per_pass(25)
    [8, 16, 25]
    >>> FreeInitSettings(d_s=0)
    Traceback (most recent call last):
    ...
    ValueError: d_s=0.0 is outside (0, 1]: ...
    """

    num_iters: int = 3
    method: str = "butterworth"
    d_s: float = 0.25
    d_t: float = 0.25
    order: float = 4
    fast_sampling: bool = False
    renoise: Literal["same", "fresh"] = "same"
    mix: Literal["freeinit", "variance_preserving"] = "freeinit"
    legacy_ideal_threshold: bool = False

    def __post_init__(self) -> None:
        n = require_int("num_iters", self.num_iters, why=": the total number of sampling passes including the plain "
                    "first one (1 = plain sampling, the paper uses 3-5).")
        _check_renoise(self.renoise)
        if self.mix not in MIXES:
            raise ValueError(
                f"mix={self.mix!r}; use 'freeinit' (weights H and 1 - H, as the public codes) or "
                "'variance_preserving' (weights whose squares sum to one per frequency)."
            )
        _, d_s, d_t, _ = check_filter(self.method, self.d_s, self.d_t, self.order)
        try:  # ignored by the other filters, but stored (and reported) as a number
            order = float(self.order)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"order must be a positive number (the paper uses 4); got {self.order!r}") from exc
        set_ = object.__setattr__
        set_(self, "num_iters", int(n))
        set_(self, "d_s", d_s)
        set_(self, "d_t", d_t)
        set_(self, "order", order)
        for name in ("fast_sampling", "legacy_ideal_threshold"):
            set_(self, name, _flag(name, getattr(self, name)))

    def replace(self, **changes: Any) -> FreeInitSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def steps_per_pass(self, num_inference_steps: int) -> list[int]:
        """Sampler steps of each pass: :func:`fast_sampling_steps` with ``fast_sampling``, else ``N`` each."""
        n = int(num_inference_steps)
        return fast_sampling_steps(n, self.num_iters) if self.fast_sampling else [n] * self.num_iters

    def mask(self, shape: Sequence[int], *, device: torch.device | str | None = None,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The low-pass mask ``H`` for latents of ``shape`` (cached by :func:`lowpass_filter`)."""
        return lowpass_filter(shape, self.method, self.d_s, self.d_t, self.order, device=device, dtype=dtype,
                              legacy_ideal_threshold=self.legacy_ideal_threshold)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (for records' attrs and results)."""
        return dataclasses.asdict(self)


_FIELDS = tuple(f.name for f in dataclasses.fields(FreeInitSettings))


def _flag(name: str, value: Any) -> bool:
    """A switch as a bool: True/False (also numpy's, and the integers 0 and 1); anything else, e.g. the string
    ``"False"``, which ``bool()`` would read as True, is refused naming the setting."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {value!r}")


def resolve_settings(settings: FreeInitSettings | Mapping[str, Any] | None, defaults: Mapping[str, Any],
                     **given: Any) -> FreeInitSettings:
    """The settings a function was called with: a :class:`FreeInitSettings` or the old keyword form.

    Parameters
    ----------
    settings
        ``settings=`` as passed (an object, a mapping of its fields, or None).
    defaults
        The function's own keyword defaults for the FreeInit fields it takes.
    **given
        The values those keywords had in the call.

    Raises
    ------
    TypeError
        When both ``settings=`` and a FreeInit keyword different from its default are passed.
    """
    if settings is None:
        base = {k: v for k, v in given.items() if k in _FIELDS}
        return FreeInitSettings(**base)
    if isinstance(settings, Mapping):
        settings = FreeInitSettings(**settings)
    if not isinstance(settings, FreeInitSettings):
        raise TypeError(f"settings must be a FreeInitSettings (or a dict of its fields); got {type(settings).__name__}")
    clash = sorted(k for k, v in given.items() if k in defaults and v != defaults[k])
    if clash:
        raise TypeError(f"pass FreeInit settings either as settings= or as keywords, not both (got {clash} too)")
    return settings


class Reinitialized(NamedTuple):
    """Output of :func:`reinitialize` (canonical order, float32 unless the inputs are float64)."""

    #: ``z'_T``, the latent the next pass starts from
    latent: torch.Tensor
    #: its signal part ``a_T · lowpass(z_0)`` (``w_low`` instead of ``H`` with the variance-preserving mix)
    signal: torch.Tensor | None
    #: its noise part ``latent - signal``
    noise: torch.Tensor | None


def draw_reinit_noise(shape: Sequence[int], generator: Any, *, renoise: str, initial_noise: torch.Tensor | None,
                      device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``eta`` and the diffusion noise of one reinitialisation, in diffusers' order (``eta`` first).

    Parameters
    ----------
    shape
        The shape the pipeline draws its latents in (its own axis order, so the draws match diffusers').
    generator
        A ``torch.Generator``, a list of one per video, or None.
    renoise : {"same", "fresh"}
        ``"same"`` returns ``initial_noise`` as the diffusion noise; ``"fresh"`` draws it after ``eta``.
    initial_noise
        The first pass's initial noise (needed for ``renoise="same"``).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``eta`` and the diffusion noise.
    """
    from diffusers.utils.torch_utils import randn_tensor

    _check_renoise(renoise)  # anything else would silently be "same"
    if device is None and initial_noise is not None:
        device = initial_noise.device
    shape = tuple(shape)
    eta = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    if renoise == "fresh":
        return eta, randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    if initial_noise is None:
        raise ValueError("renoise='same' reuses the first pass's initial noise: pass initial_noise=")
    return eta, initial_noise


def mix_noise(z_T: torch.Tensor, eta: torch.Tensor, lowpass: torch.Tensor, mix: str = "freeinit") -> torch.Tensor:
    """Step 3 alone: the low frequencies of ``z_T`` with the high frequencies of ``eta`` under ``lowpass``.

    ``mix="freeinit"``: :func:`~freeinit_lab.core.spectral.reinit_noise`; ``"variance_preserving"``:
    :func:`~freeinit_lab.core.spectral.reinit_noise_variance_preserving`.
    """
    if mix == "freeinit":
        return reinit_noise(z_T, eta, lowpass)
    if mix == "variance_preserving":
        return reinit_noise_variance_preserving(z_T, eta, lowpass)
    raise ValueError(f"mix={mix!r}; use 'freeinit' or 'variance_preserving'")


def reinitialize(clean: torch.Tensor, noise: torch.Tensor, eta: torch.Tensor, *, schedule: Any,
                 settings: FreeInitSettings, lowpass: torch.Tensor | None = None,
                 parts: bool = True) -> Reinitialized:
    """FreeInit's reinitialisation ``z'_T`` of a clean latent (module docstring, steps 1 and 3).

    Parameters
    ----------
    clean, noise, eta
        ``z_0`` of the previous pass, the diffusion noise and the high-frequency draw, each
        ``(..., channel, frame, height, width)`` in canonical order (computed in float32, or float64 if
        ``clean`` is).
    schedule
        A :class:`~freeinit_lab.core.schedules.NoiseSchedule`; ``z_T`` is taken at its ``terminal_timestep``.
    settings
        Filter and mix (``method``, ``d_s``, ``d_t``, ``order``, ``mix``, ``legacy_ideal_threshold``).
    lowpass
        A mask to use instead of ``settings.mask(...)`` (e.g. one cut-off of a grid).
    parts
        Also return ``signal`` and ``noise`` (one more FFT); else they are None.

    Returns
    -------
    Reinitialized
        ``latent`` (``z'_T``), ``signal`` and ``noise``.
    """
    dtype = torch.float64 if clean.dtype == torch.float64 else torch.float32
    z0 = clean.to(dtype)
    if lowpass is None:
        lowpass = settings.mask(z0.shape, device=z0.device, dtype=dtype)
    t_T = schedule.terminal_timestep
    z_T = schedule.diffuse(z0, t_T, noise.to(dtype))
    latent = mix_noise(z_T, eta.to(dtype), lowpass, settings.mix)
    low = lowpass if settings.mix == "freeinit" else variance_preserving_weights(lowpass)[0]
    if not parts:
        return Reinitialized(latent, None, None)
    a_T = float(schedule.coefficients(t_T)[0])
    signal = apply_lowpass(z0 * a_T, low)
    return Reinitialized(latent, signal, latent - signal)


def settings_keywords(fn: Any, settings: FreeInitSettings | Mapping[str, Any] | None,
                      **given: Any) -> tuple[Any, ...]:
    """The FreeInit keywords ``given`` to ``fn``, replaced by ``settings``' fields when a settings object is passed.

    ``fn``'s own keyword defaults (read from its signature) tell a keyword the caller set from one left alone, so
    passing both a settings object and a non-default keyword raises (see :func:`resolve_settings`). A settings
    object whose other fields (those not in ``given``: ``fn`` does not apply them) differ from
    :class:`FreeInitSettings`' defaults raises too, naming them, rather than being run with the defaults. Returns
    the values in the order of ``given``.
    """
    if settings is None:
        return tuple(given.values())
    params = inspect.signature(fn).parameters
    defaults = {k: params[k].default for k in given if k in params}
    resolved = resolve_settings(settings, defaults, **given)
    ignored = {f.name: getattr(resolved, f.name) for f in dataclasses.fields(FreeInitSettings)
               if f.name not in given and getattr(resolved, f.name) != f.default}
    if ignored:
        name = getattr(fn, "__name__", "this function")
        raise TypeError(
            f"{name} applies only {', '.join(given)} of settings=; it would ignore "
            f"{', '.join(f'{k}={v!r}' for k, v in ignored.items())} and run with the defaults "
            f"({', '.join(f'{k}={FreeInitSettings.__dataclass_fields__[k].default!r}' for k in ignored)}). Leave "
            "them at their defaults here (settings.replace(...)), or run freeinit(pipe, settings=...) for them"
        )
    return tuple(getattr(resolved, k) for k in given)
