"""Controls for FreeInit: initialisation arms that each keep one of its ingredients and drop the others.

FreeInit's reinitialised latent (:func:`freeinit_lab.spectral.reinit_noise`) is

.. math::  z'_T = \\mathrm{IFFT3D}\\big(H \\cdot \\mathrm{FFT3D}(a_T x_0 + b_T \\varepsilon)
           + (1 - H) \\cdot \\mathrm{FFT3D}(\\eta)\\big)

with ``x_0`` the previous pass's clean latent, ``ε`` the first pass's initial noise, ``η`` fresh noise and ``H`` a
soft low-pass mask. It changes three things at once: it adds a **data-like low band** (``a_T x_0``), it adds **this
video's own** low band (the same ``x_0`` the video came from), and for a soft mask it **lowers the initial
latent's power** (a bin of two unit-variance inputs has variance ``H² + (1 - H)² < 1``). The arms below, each an
initialisation strategy on the same ``ε`` (and the same ``η`` where they mix), separate these:

=====================  ==============================================================================  ==========
arm                    initial latent of the last pass                                                  isolates
=====================  ==============================================================================  ==========
``plain``              ``ε``                                                                            baseline
``freeinit``           FreeInit, same ``ε`` in the re-diffusion (both public codes)                    —
``freeinit_fresh``     FreeInit with fresh diffusion noise ``ε'`` each pass (a variant)                ε reuse
``variance_preserving``  FreeInit's mix with weights ``H, 1 - H`` normalised by ``sqrt(H² + (1 - H)²)``  variance
``legacy_ideal``       FreeInit with the reference codes' ideal filter ``d² <= 2 d_s`` (sic)           filter
``mask_only``          ``IFFT3D(H·FFT3D(b_T ε) + (1 - H)·FFT3D(η))``: the mix without ``a_T x_0``        variance
``amplitude_matched``  ``ε`` scaled band by band to the training ``z_T`` marginal's power, no signal   amplitude
``shuffled_low``       FreeInit keeping the low band of *another* video of the batch (a derangement)    "own"
=====================  ==============================================================================  ==========

``mask_only`` has per-bin variance ``H² b_T² + (1 - H)²``: the mask's variance change alone. ``amplitude_matched``
has per-bin variance ``a_T² P_k + b_T²`` with ``P_k`` the band power of the clean latents (around their
per-channel mean, averaged over channels; no mean field, no phase, no correlation with any clean video).
``shuffled_low`` uses a single-cycle derangement (Sattolo's algorithm), so for ``n >= num_iters`` videos no
video's chain ever meets its own noise again and its low band is exactly as data-like as FreeInit's but foreign.

The kernels here act on canonical ``(batch, channel, frame, height, width)`` tensors; the paired experiment that
runs all arms on one pipeline is :func:`freeinit_lab.decomposition.decompose_freeinit`, their closed forms on the
analytic Gaussian model :func:`freeinit_lab.strategies.analytic_controls`.

Examples
--------
>>> import torch
>>> from freeinit_lab.core.spectral import lowpass_filter
>>> g = torch.Generator().manual_seed(0)
>>> eps, eta = torch.randn(2, 2, 3, 4, 8, 8, generator=g)
>>> H = lowpass_filter(eps.shape, "gaussian", 0.25, 0.25)
>>> z = mask_only_latent(eps, eta, H, b_T=0.9977)
>>> tuple(z.shape)
(2, 3, 4, 8, 8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from .._checks import require_int
from .reinit import _flag, mix_noise
from .spectral import (
    _check_video,
    _resolve_edges,
    band_index,
    band_power,
    lowpass_filter,
    reinit_noise,
)

__all__ = [
    "ControlArm",
    "ARMS",
    "CONTROLS",
    "CONTROL_ARMS",
    "register_control",
    "arm_lowpass",
    "reinit_arm",
    "mask_only_latent",
    "amplitude_matched_latent",
    "amplitude_target",
    "single_cycle_derangement",
]


@dataclass(frozen=True)
class ControlArm:
    """One arm of the decomposition: how its initial latents are built.

    Parameters
    ----------
    name
        Arm label (the ``arm`` coordinate).
    signal
        The clean latent that enters the re-diffused ``z_T = a_T · signal + b_T · noise``: ``"own"`` (the arm's
        previous output for this video, FreeInit), ``"other"`` (the arm's previous output of another video, a
        derangement), ``"none"`` (no signal: ``z_T = b_T · noise``), or ``None`` for arms that do not mix at all
        (``plain``, ``amplitude_matched``).
    renoise
        Noise of the re-diffusion: ``"same"`` (the first pass's ``ε``) or ``"fresh"`` (new noise each pass). Arms
        that do not mix (``signal=None``) keep the defaults of ``renoise``, ``mix`` and ``legacy_ideal``; other
        values are refused, since nothing would apply them.
    mix
        ``"freeinit"`` (weights ``H``, ``1 - H``) or ``"variance_preserving"``.
    legacy_ideal
        Use the reference codes' ideal filter ``d² <= 2 d_s`` instead of the chosen filter.
    amplitude_matched
        Pass-0-like arm: ``ε`` scaled band by band to the training marginal's power (``signal`` must be ``None``).
    description
        One line for tables and figures.
    """

    name: str
    signal: Literal["own", "other", "none"] | None = "own"
    renoise: Literal["same", "fresh"] = "same"
    mix: Literal["freeinit", "variance_preserving"] = "freeinit"
    legacy_ideal: bool = False
    amplitude_matched: bool = False
    description: str = ""

    def __post_init__(self):
        if self.signal not in ("own", "other", "none", None):
            raise ValueError(f"signal={self.signal!r}; use 'own', 'other', 'none' or None")
        if self.renoise not in ("same", "fresh"):
            raise ValueError(f"renoise={self.renoise!r}; use 'same' or 'fresh'")
        if self.mix not in ("freeinit", "variance_preserving"):
            raise ValueError(f"mix={self.mix!r}; use 'freeinit' or 'variance_preserving'")
        for name in ("legacy_ideal", "amplitude_matched"):  # bool("False") is True: a string switch is refused
            object.__setattr__(self, name, _flag(name, getattr(self, name)))
        if self.amplitude_matched and self.signal is not None:
            raise ValueError("an amplitude-matched arm does not mix: set signal=None")
        if self.signal is None:
            unused = {k: v for k, v in (("renoise", self.renoise), ("mix", self.mix), ("legacy_ideal", self.legacy_ideal))
                      if v != ControlArm.__dataclass_fields__[k].default}
            if unused:
                raise ValueError(
                    f"arm {self.name!r} does not mix (signal=None: it starts from ε"
                    + (" scaled band by band" if self.amplitude_matched else "") + f"), so "
                    + ", ".join(f"{k}={v!r}" for k, v in unused.items()) + " would be ignored; for a mixing arm "
                    "without the clean signal use signal='none'"
                )

    @property
    def chained(self) -> bool:
        """Whether each pass starts from the previous pass's output (FreeInit-like arms)."""
        return self.signal in ("own", "other")

    def num_passes(self, num_iters: int) -> int:
        """Sampling passes per video: ``num_iters`` for chained arms, 1 otherwise (no earlier pass is needed)."""
        return int(num_iters) if self.chained else 1


#: Every arm by name, in report order.
CONTROL_ARMS: dict[str, ControlArm] = {
    "plain": ControlArm("plain", signal=None, description="plain sampling from ε"),
    "freeinit": ControlArm("freeinit", description="FreeInit, same ε in the re-diffusion"),
    "freeinit_fresh": ControlArm("freeinit_fresh", renoise="fresh", description="FreeInit, fresh diffusion noise"),
    "variance_preserving": ControlArm("variance_preserving", mix="variance_preserving",
                                      description="FreeInit with the variance-preserving mix"),
    "legacy_ideal": ControlArm("legacy_ideal", legacy_ideal=True,
                               description="FreeInit with the reference codes' ideal filter d² <= 2 d_s"),
    "mask_only": ControlArm("mask_only", signal="none",
                            description="the mix of b_T ε with η, no clean signal: the mask's variance change"),
    "amplitude_matched": ControlArm("amplitude_matched", signal=None, amplitude_matched=True,
                                    description="ε scaled band by band to the training z_T power, no signal"),
    "shuffled_low": ControlArm("shuffled_low", signal="other",
                               description="FreeInit keeping another video's low band (derangement)"),
}

#: All arm names; ``plain`` and ``freeinit`` are the two ends every control is measured between.
ARMS: tuple[str, ...] = tuple(CONTROL_ARMS)
#: The controls (every arm but ``plain`` and ``freeinit``).
CONTROLS: tuple[str, ...] = tuple(a for a in CONTROL_ARMS if a not in ("plain", "freeinit"))


def register_control(arm: ControlArm, *, overwrite: bool = False) -> None:
    """Add a control arm (e.g. ``ControlArm("vp_fresh", renoise="fresh", mix="variance_preserving")``).

    It then runs in :func:`freeinit_lab.decomposition.decompose_freeinit` when named in ``controls=`` (``None``
    keeps meaning the built-in :data:`CONTROLS`).
    """
    if not isinstance(arm, ControlArm):
        raise TypeError(f"register a ControlArm, got {type(arm).__name__}")
    if arm.name in CONTROL_ARMS and not overwrite:
        raise ValueError(f"an arm named {arm.name!r} exists; pass overwrite=True to replace it")
    if arm.name in ("plain", "freeinit"):
        raise ValueError("'plain' and 'freeinit' are the decomposition's two ends and cannot be replaced")
    CONTROL_ARMS[arm.name] = arm


# ----------------------------------------------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------------------------------------------
def arm_lowpass(
    arm: ControlArm, shape: Sequence[int], method: str = "gaussian", d_s: float = 0.25, d_t: float = 0.25,
    order: float = 4.0, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
) -> torch.Tensor:
    """The arm's mask ``H``: the chosen filter, or the legacy ideal filter (same ``d_s``, ``d_t``)."""
    if arm.legacy_ideal:
        return lowpass_filter(shape, "ideal", d_s, d_t, dtype=dtype, device=device, legacy_ideal_threshold=True)
    return lowpass_filter(shape, method, d_s, d_t, order, dtype=dtype, device=device)


def single_cycle_derangement(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random permutation of ``0..n-1`` made of one ``n``-cycle (Sattolo's algorithm).

    ``perm[i] != i`` for every ``i`` (a derangement), and more: ``perm`` applied ``j < n`` times never returns to
    ``i``, so chains of up to ``n - 1`` shuffled passes never see their own noise.
    """
    n = require_int("n", n, low=2, why=" (videos to derange: a derangement needs at least 2)")
    items = list(range(n))
    draws = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
    for i in range(n - 1, 0, -1):
        j = int(draws[i] * i)  # 0 <= j < i: Sattolo (j == i excluded)
        items[i], items[j] = items[j], items[i]
    return torch.tensor(items, dtype=torch.long)


def mask_only_latent(eps: torch.Tensor, eta: torch.Tensor, lowpass: torch.Tensor, b_T: float) -> torch.Tensor:
    """FreeInit's mix with the clean signal removed: ``IFFT3D(H·FFT3D(b_T ε) + (1 - H)·FFT3D(η))``.

    Per-bin variance ``H² b_T² + (1 - H)²`` for independent unit white ``ε``, ``η``.
    """
    _check_video(eps, "eps")
    return reinit_noise(float(b_T) * eps, eta, lowpass)


def amplitude_target(clean: torch.Tensor, a_T: float, b_T: float, edges) -> np.ndarray:
    """Band power of the training marginal ``z_T = a_T x_0 + b_T ε`` around its mean field, per band.

    ``a_T² P_k + b_T²`` with ``P_k`` the mean power per bin in band ``k`` of ``clean - μ`` (``μ`` the per-channel
    mean over all clean latents), averaged over videos and channels (ortho-normalised FFT, unit white noise = 1).

    Parameters
    ----------
    clean
        ``(N, C, F, H, W)`` clean latents: real data when you have it, otherwise the model's own samples.
    edges
        Band edges (see :func:`freeinit_lab.spectral.band_masks`).

    Returns
    -------
    numpy.ndarray
        ``(K,)`` float64, in units of unit white noise per bin.
    """
    _check_video(clean, "clean")
    if clean.dim() != 5:
        # the mean field is per channel (axis 1): any other rank would take another axis for the channels
        raise ValueError(
            f"clean has shape {tuple(clean.shape)}; pass clean latents shaped (N, C, F, H, W) (one video: "
            "clean.unsqueeze(0))"
        )
    x = clean.detach().to("cpu", torch.float64)
    edges = _resolve_edges(tuple(x.shape[-3:]), edges, 6, 1.0)
    mu = x.mean(dim=(0, *range(2, x.dim())), keepdim=True)
    p = band_power(x - mu, edges=edges).reshape(-1, len(edges) - 1).mean(0).numpy()
    return float(a_T) ** 2 * p + float(b_T) ** 2


def amplitude_matched_latent(eps: torch.Tensor, target_power, edges) -> torch.Tensor:
    """White ``ε`` scaled band by band to ``target_power``: ``IFFT3D(sqrt(T_k(bin)) · FFT3D(ε))``.

    The scale is one number per radial band (``edges``), symmetric under ``f -> -f``, so the result is real and,
    for unit white ``ε``, has expected power ``target_power[k]`` in every bin of band ``k``.
    """
    _check_video(eps, "eps")
    target = np.asarray(target_power, dtype=np.float64)
    shape3 = tuple(eps.shape[-3:])
    edges = _resolve_edges(shape3, edges, 6, 1.0)
    if target.shape != (len(edges) - 1,) or not np.all((target > 0) & np.isfinite(target)):
        raise ValueError(
            f"target_power must hold one finite positive power per band ({len(edges) - 1}); got {target!r}"
        )
    scale = torch.from_numpy(np.sqrt(target))[band_index(shape3, edges=edges)]  # (F, H, W), FFT order
    work = torch.float64 if eps.dtype == torch.float64 else torch.float32
    half = scale[..., : shape3[-1] // 2 + 1].to(device=eps.device, dtype=work)
    spec = torch.fft.rfftn(eps.to(work), dim=(-3, -2, -1))
    return torch.fft.irfftn(spec * half, s=shape3, dim=(-3, -2, -1)).to(eps.dtype)


def _check_permutation(permutation, n: int, name: str) -> torch.Tensor:
    """``permutation`` as a long tensor holding each of ``0..n-1`` once, or a ValueError naming the fix."""
    fix = f"pass permutation=single_cycle_derangement({n}, generator) (one index per video)"
    if permutation is None:
        raise ValueError(f"arm {name!r} keeps another video's low band: it needs a permutation of the videos; {fix}")
    perm = torch.as_tensor(permutation)
    if perm.is_floating_point() or perm.is_complex() or perm.dtype == torch.bool or perm.dim() != 1:
        raise ValueError(f"permutation must be a 1-D integer tensor; got {perm.dtype} of shape {tuple(perm.shape)}; "
                         f"{fix}")
    perm = perm.to(torch.long)
    if perm.numel() != n or not torch.equal(torch.sort(perm.cpu()).values, torch.arange(n)):
        raise ValueError(f"permutation {perm.tolist()} is not a permutation of the {n} videos 0..{n - 1}; {fix}")
    return perm


def reinit_arm(
    arm: ControlArm,
    *,
    clean: torch.Tensor | None,
    eps: torch.Tensor,
    eta: torch.Tensor,
    fresh: torch.Tensor | None,
    a_T: float,
    b_T: float,
    lowpass: torch.Tensor,
    permutation: torch.Tensor | None = None,
) -> torch.Tensor:
    """The arm's reinitialised latent for one FreeInit pass (canonical ``(N, C, F, H, W)``).

    ``z_T = a_T · s + b_T · n`` with ``s`` = ``clean`` (``"own"``), ``clean[permutation]`` (``"other"``) or 0
    (``"none"``) and ``n`` = ``eps`` (``renoise="same"``) or ``fresh``; then FreeInit's or the
    variance-preserving mix with ``eta`` under ``lowpass``.
    """
    if arm.signal is None:
        raise ValueError(f"arm {arm.name!r} does not reinitialise (it has no mix)")
    noise = eps if arm.renoise == "same" else fresh
    if noise is None:
        raise ValueError(f"arm {arm.name!r} needs fresh diffusion noise")
    if arm.signal == "none":
        z_T = float(b_T) * noise
    else:
        if clean is None:
            raise ValueError(f"arm {arm.name!r} needs the previous pass's clean latents")
        signal = clean if arm.signal == "own" else clean[_check_permutation(permutation, clean.shape[0], arm.name)]
        z_T = float(a_T) * signal.to(noise.dtype) + float(b_T) * noise
    return mix_noise(z_T, eta, lowpass, arm.mix)
