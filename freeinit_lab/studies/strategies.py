"""Initialisation strategies judged against the data: consistency *and* dynamics *and* band power at ``t = T``.

FreeInit's paper scores temporal consistency as "higher is better", which also rewards a video that barely moves.
This module puts the ways of starting a sampler behind one interface and measures each of them against the data
distribution the model was trained on, with denoiser evaluations as the cost axis.

Strategies (:class:`InitStrategy`), all on the same white noise ``eps`` per video so that they are paired:

* ``init="noise"``: plain sampling from ``eps`` (with ``num_iters > 1``: FreeInit, :func:`freeinit_lab.freeinit`,
  with ``renoise="same" | "fresh"`` and ``mix="freeinit" | "variance_preserving"``);
* ``init="spectrum_matched"``: a Gaussian initial latent whose low band has the per-frequency mean and
  covariance of the *training* marginal at ``t = T`` (:class:`TerminalMarginal`, estimated from clean latents),
  blended into unit white noise by the low-pass mask ``H``: per-bin covariance
  ``H(k) (a_T² Σ(k) + b_T² I) + (1 - H(k)) I``, mean ``a_T μ H(0)``. No extra denoising pass;
* ``init="oracle"``: ``z_T = a_T x_0 + b_T eps`` for given clean latents ``x_0`` — the training marginal itself, a
  reference (it needs data you would not have at inference).

Every strategy's pass-0 latent is available on its own (:meth:`InitStrategy.initial_latent`) and can be handed to
``freeinit(pipe, latents=...)``; :meth:`InitStrategy.run` does exactly that.

:func:`evaluate_strategies` runs each strategy once, batched, and returns an :class:`xarray.Dataset` with, per
strategy row and video, temporal consistency (first-frame cosine of mean-removed frames, the paper's pairing),
dynamics (RMS change between consecutive frames), band power of the latent the last pass starts from, and the
denoiser evaluations; the same quantities of the data. :func:`summarize_strategies` turns it into a table of
means, standard errors, paired tests against plain sampling, Welch tests against the data and a distance to the
data. For the analytic Gaussian reference (:func:`freeinit_lab.pipelines.load_analytic_pipeline`) a deterministic
sampler (DDIM, DPM-Solver++, UniPC) is linear per frequency, so :func:`analytic_prediction` gives every strategy's
expected band powers in closed form (and consistency and dynamics as ratios of expectations), :func:`analytic_gain`
the sampler's per-bin gain.

Conventions: metrics are computed on the unclipped ``output_type="latent"`` output (pixels in ``[-1, 1]`` for the
embedded models), so the analytic closed forms apply; band power is that of :func:`freeinit_lab.spectral.band_power`
(ortho-normalised 3-D FFT, unit white noise has power 1 per bin), averaged over channels, of the initial latent minus
the marginal's mean field ``a_T μ`` (so a missing mean shows up in band 0), reported in dB.

Examples
--------
>>> import torch, freeinit_lab as fl
>>> from freeinit_lab.studies.strategies import InitStrategy, TerminalMarginal
>>> pipe = fl.load_analytic_pipeline()
>>> marginal = TerminalMarginal.from_latents(fl.load_clips(8, 16), pipe.scheduler)
>>> sm = InitStrategy("spectrum-matched", init="spectrum_matched")
>>> eps = torch.randn(2, 3, 8, 16, 16, generator=torch.Generator().manual_seed(0))
>>> z = sm.initial_latent(eps, marginal=marginal)          # usable as freeinit(pipe, latents=z, ...)
>>> res = sm.run(pipe, eps, marginal=marginal, num_inference_steps=5)
>>> tuple(res.latents.shape), res.num_denoiser_evals
((2, 3, 8, 16, 16), 5)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from freeinit_lab._compat import moved_attributes
from freeinit_lab.analysis.metrics import frame_cosine_similarity
from freeinit_lab.core.controls import ARMS, CONTROL_ARMS, arm_lowpass
from freeinit_lab.core.dims import band_coords
from freeinit_lab.core.reinit import FreeInitSettings
from freeinit_lab.core.schedules import NoiseSchedule, get_schedule
from freeinit_lab.core.spectral import (
    _check_video,
    _require_nonempty_bands,
    band_index,
    band_masks,
    band_power,
    default_band_edges,
    variance_preserving_weights,
)
from freeinit_lab.engine.checks import resolve_num_inference_steps
from freeinit_lab.engine.loop import freeinit
from freeinit_lab.hooks.layouts import resolve_layout, get_denoisers, get_scheduler
from freeinit_lab.studies.evidence import _welch, paired_test
from freeinit_lab._checks import require_frames, require_int, require_seed

__all__ = [
    "TerminalMarginal",
    "InitStrategy",
    "default_strategies",
    "evaluate_strategies",
    "summarize_strategies",
    "analytic_gain",
    "analytic_prediction",
    "analytic_controls",
    "pooled_metrics",
    "closed_form_comparison",
    "INITS",
]

INITS = ("noise", "spectrum_matched", "oracle")
_FFT = (-3, -2, -1)


def _schedule_of(scheduler: Any):
    """A NoiseSchedule from a diffusers scheduler, a pipeline (its scheduler) or a NoiseSchedule."""

    if isinstance(scheduler, NoiseSchedule):
        return scheduler
    return get_schedule(scheduler)


def _reversal_index(n: int) -> torch.Tensor:
    return (-torch.arange(n)) % n


# ----------------------------------------------------------------------------------------------------------------
# the training marginal at t = T, per frequency
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TerminalMarginal:
    """Gaussian moment match of the training marginal ``z_T = a_T x_0 + b_T eps`` per frequency bin.

    With ``μ`` the per-channel mean of the clean latents and ``X(k)`` the ortho-normalised 3-D FFT of
    ``x_0 - μ``, the marginal has mean ``a_T μ`` (a constant field: the DC bin only) and per-bin channel
    covariance ``a_T² Σ(k) + b_T² I`` with ``Σ(k) = E[X(k) X(k)^H]`` (``C × C``, Hermitian). For stationary data
    bins are uncorrelated, so these moments define a Gaussian over whole latents.

    Attributes
    ----------
    mean
        ``(C,)`` float64, per-channel mean ``μ`` of the clean latents.
    covariance
        ``(F, H, W, C, C)`` complex128, ``Σ(k)`` in ``torch.fft.fftn`` order (real when ``symmetrize``).
    a_T, b_T
        Forward-process coefficients at ``timestep``.
    timestep
        The training timestep ``T`` the marginal is taken at.
    num_latents
        How many clean latents the moments were estimated from.
    """

    mean: torch.Tensor
    covariance: torch.Tensor
    a_T: float
    b_T: float
    timestep: float
    num_latents: int = 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(channel, frame, height, width)`` of one latent."""
        f, h, w, c, _ = self.covariance.shape
        return (c, f, h, w)

    @classmethod
    def from_latents(
        cls,
        clean: torch.Tensor,
        scheduler: Any,
        *,
        timestep: float | None = None,
        symmetrize: bool = True,
        edges: Sequence[float] | None = None,
        num_bands: int | None = None,
    ) -> "TerminalMarginal":
        """Estimate the marginal from clean latents (e.g. real clips, or a user's own encoded videos).

        Parameters
        ----------
        clean
            ``(N, C, F, H, W)`` clean latents, ``N >= 2``.
        scheduler
            A diffusers scheduler, a pipeline, or a :class:`~freeinit_lab.schedules.NoiseSchedule`.
        timestep
            Training timestep; default the schedule's terminal one (999), where FreeInit re-diffuses to.
        symmetrize
            Average ``Σ(k)`` over the 8 sign flips of ``(k_t, k_h, k_w)`` — the same as averaging over time reversal
            and spatial mirror images of the data, as :func:`freeinit_lab.pipelines.fit_gaussian_prior` does — which
            makes ``Σ(k)`` real and even in every axis.
        edges, num_bands
            If given, average ``Σ`` over the radial bands of :func:`freeinit_lab.spectral.band_masks` (smoother
            estimate from few latents; ``num_bands`` alone uses the default edges).

        Returns
        -------
        TerminalMarginal
        """

        _check_video(clean, "clean")
        if clean.dim() != 5 or clean.shape[0] < 2:
            raise ValueError(
                f"clean has shape {tuple(clean.shape)}; pass at least 2 clean latents shaped (N, C, F, H, W) to "
                "estimate a covariance"
            )
        schedule = _schedule_of(scheduler)
        if timestep is not None and (isinstance(timestep, (bool, np.bool_))
                                     or not isinstance(timestep, (int, float, np.integer, np.floating))):
            raise TypeError(f"timestep={timestep!r} must be a number (a training timestep, e.g. 999), or None for the "
                            "schedule's terminal one")  # float() would read True as timestep 1
        t = float(schedule.terminal_timestep if timestep is None else timestep)
        a_T, b_T = (float(v) for v in schedule.coefficients(t))
        x = clean.detach().to("cpu", torch.float64)
        mean = x.mean(dim=(0, 2, 3, 4))
        spec = torch.fft.fftn(x - mean.view(1, -1, 1, 1, 1), dim=_FFT, norm="ortho")  # (N, C, F, H, W)
        spec = spec.permute(0, 2, 3, 4, 1)  # (N, F, H, W, C)
        cov = torch.einsum("nfhwc,nfhwd->fhwcd", spec, spec.conj()) / x.shape[0]
        if symmetrize:
            views = []
            for flips in range(8):
                v = cov
                for axis, bit in zip((0, 1, 2), (1, 2, 4)):
                    if flips & bit:
                        v = v.index_select(axis, _reversal_index(v.shape[axis]))
                views.append(v)
            cov = torch.stack(views).mean(0)
            cov = (cov + cov.conj()) / 2  # exactly real: the 8 views hold conjugate pairs
        if edges is not None or num_bands is not None:
            idx = band_index(x.shape, edges=edges, num_bands=num_bands or 6)
            k = int(idx.max()) + 1
            flat = cov.reshape(-1, *cov.shape[-2:])
            sums = torch.zeros(k, *cov.shape[-2:], dtype=cov.dtype).index_add_(0, idx.reshape(-1), flat)
            counts = torch.bincount(idx.reshape(-1), minlength=k).to(torch.float64)
            cov = (sums / counts.view(-1, 1, 1))[idx]
        return cls(mean=mean, covariance=cov, a_T=a_T, b_T=b_T, timestep=t, num_latents=int(x.shape[0]))

    def covariance_at_T(self, lowpass: torch.Tensor | None = None) -> torch.Tensor:
        """Per-bin covariance of :meth:`sample`: ``H (a_T² Σ + b_T² I) + (1 - H) I`` (``H ≡ 1`` if ``None``).

        Returns ``(F, H, W, C, C)`` complex128.
        """
        c = self.covariance.shape[-1]
        eye = torch.eye(c, dtype=self.covariance.dtype)
        full = self.a_T**2 * self.covariance + self.b_T**2 * eye
        if lowpass is None:
            return full
        h = self._mask(lowpass)[..., None, None]
        return h * full + (1 - h) * eye

    def _mask(self, lowpass: torch.Tensor) -> torch.Tensor:
        if not isinstance(lowpass, torch.Tensor):
            raise TypeError("lowpass must be a torch.Tensor mask from freeinit_lab.lowpass_filter(shape, ...)")
        f, h, w = self.shape[1:]
        m = lowpass
        while m.dim() > 3:
            m = m[0]
        if tuple(m.shape) != (f, h, w):
            raise ValueError(f"lowpass mask of shape {tuple(lowpass.shape)} does not fit latents {self.shape}")
        m = m.to(torch.float64)
        if bool(((m < 0) | (m > 1)).any()):
            raise ValueError("lowpass mask values must lie in [0, 1]")
        return m

    def sample(self, noise: torch.Tensor, lowpass: torch.Tensor | None = None) -> torch.Tensor:
        """Colour white noise into the (low-band) training marginal: a spectrum-matched initial latent.

        ``out = a_T μ H(0) + IFFT3D(L(k) FFT3D(noise)(k))`` with ``L(k) L(k)^H`` = :meth:`covariance_at_T` (Cholesky
        per bin), so for unit white ``noise`` the output has exactly that per-bin covariance and is real (``L(-k) =
        conj(L(k))``). Bins where ``H = 0`` keep ``noise`` unchanged.

        Parameters
        ----------
        noise
            ``(B, C, F, H, W)`` unit white Gaussian noise.
        lowpass
            Mask ``H`` (FFT order) of the band taken from the marginal; ``None`` = every frequency.

        Returns
        -------
        torch.Tensor
            Same shape and dtype as ``noise``.
        """

        _check_video(noise, "noise")
        if noise.dim() != 5 or tuple(noise.shape[1:]) != self.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (batch, {', '.join(map(str, self.shape))})")
        cov = self.covariance_at_T(lowpass)
        chol = torch.linalg.cholesky(cov)  # (F, H, W, C, C)
        spec = torch.fft.fftn(noise.to(torch.float64), dim=_FFT, norm="ortho").permute(0, 2, 3, 4, 1)
        coloured = torch.einsum("fhwcd,nfhwd->nfhwc", chol, spec).permute(0, 4, 1, 2, 3)
        out = torch.fft.ifftn(coloured, dim=_FFT, norm="ortho").real
        h0 = 1.0 if lowpass is None else float(self._mask(lowpass)[0, 0, 0])
        out = out + (self.a_T * h0) * self.mean.view(1, -1, 1, 1, 1)
        return out.to(device=noise.device, dtype=noise.dtype)

    def diffuse(self, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``a_T x_0 + b_T eps``: exact draws of the training marginal for given clean latents (the oracle)."""
        if clean.shape != noise.shape:
            raise ValueError(f"clean {tuple(clean.shape)} and noise {tuple(noise.shape)} must have the same shape")
        return (self.a_T * clean.to(noise.dtype) + self.b_T * noise).to(noise.dtype)


# ----------------------------------------------------------------------------------------------------------------
# strategies
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InitStrategy:
    """One way to start a sampler: a pass-0 initial latent, then ``num_iters - 1`` FreeInit passes (or none).

    Parameters
    ----------
    name
        Label in tables and figures.
    init
        Pass-0 latent from the white noise ``eps``: ``"noise"`` (``eps`` itself), ``"spectrum_matched"``
        (:meth:`TerminalMarginal.sample` with the low-pass mask of ``method``/``d_s``/``d_t``/``order``),
        ``"oracle"`` (``a_T x_0 + b_T eps`` for given clean latents).
    num_iters, renoise, mix, method, d_s, d_t, order, fast_sampling
        Passed to :func:`freeinit_lab.freeinit` (``num_iters=1`` = no FreeInit pass). The filter also defines the
        low band of ``"spectrum_matched"``. Default filter: Gaussian ``D0 = 0.25`` (the paper's main table).
    report_passes
        :func:`evaluate_strategies` reports every FreeInit iteration ``1 .. num_iters - 1`` as its own row
        (``"<name> ×i"``), which equals a run with ``num_iters = i + 1`` when ``fast_sampling=False``.
    """

    name: str
    init: Literal["noise", "spectrum_matched", "oracle"] = "noise"
    num_iters: int = 1
    renoise: Literal["same", "fresh"] = "same"
    mix: Literal["freeinit", "variance_preserving"] = "freeinit"
    method: str = "gaussian"
    d_s: float = 0.25
    d_t: float = 0.25
    order: float = 4.0
    fast_sampling: bool = False
    report_passes: bool = False

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"init={self.init!r}; choose one of {', '.join(INITS)}")
        _ = self.settings  # validates num_iters, renoise, mix and the filter once, with the settings' messages

    @property
    def settings(self) -> FreeInitSettings:
        """The strategy's FreeInit settings (``num_iters=1``: no FreeInit pass)."""
        return FreeInitSettings(
            num_iters=self.num_iters, method=self.method, d_s=self.d_s, d_t=self.d_t, order=self.order,
            fast_sampling=self.fast_sampling, renoise=self.renoise, mix=self.mix,
        )

    def lowpass(self, shape: Sequence[int]) -> torch.Tensor:
        """The strategy's low-pass mask ``H`` for latents of ``shape`` (float64, FFT order)."""
        return self.settings.mask(tuple(shape), dtype=torch.float64)

    def initial_latent(
        self,
        noise: torch.Tensor,
        *,
        marginal: TerminalMarginal | None = None,
        clean: torch.Tensor | None = None,
        scheduler: Any = None,
    ) -> torch.Tensor:
        """The pass-0 latent from white ``noise`` ``(B, C, F, H, W)`` (hand it to ``freeinit(latents=...)``).

        ``"spectrum_matched"`` needs ``marginal``; ``"oracle"`` needs ``clean`` of the same shape and either
        ``marginal`` or ``scheduler`` for ``a_T, b_T``.
        """
        if not isinstance(noise, torch.Tensor) or noise.dim() != 5:
            raise ValueError("noise must be a (batch, channel, frame, height, width) tensor of white Gaussian noise")
        if self.init == "noise":
            return noise.clone()
        if self.init == "spectrum_matched":
            if marginal is None:
                raise ValueError(
                    "init='spectrum_matched' needs marginal=TerminalMarginal.from_latents(clean_latents, scheduler): "
                    "the training marginal's low band is estimated from clean latents (e.g. real clips)"
                )
            return marginal.sample(noise, self.lowpass(noise.shape))
        if clean is None:
            raise ValueError("init='oracle' needs clean= latents (the training data whose marginal z_T is drawn)")
        if tuple(clean.shape) != tuple(noise.shape):
            raise ValueError(f"clean {tuple(clean.shape)} must have the shape of noise {tuple(noise.shape)}")
        if marginal is None:
            if scheduler is None:
                raise ValueError("init='oracle' needs marginal= or scheduler= for the coefficients a_T, b_T")
            schedule = _schedule_of(scheduler)
            return schedule.diffuse(clean.to(noise.dtype), schedule.terminal_timestep, noise)
        return marginal.diffuse(clean, noise)

    def run(
        self,
        pipe: Any,
        noise: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        marginal: TerminalMarginal | None = None,
        clean: torch.Tensor | None = None,
        **call_kwargs: Any,
    ):
        """Sample with this strategy: :meth:`initial_latent`, then :func:`freeinit_lab.freeinit`.

        Returns
        -------
        FreeInitResult
            ``iterations`` holds every pass; ``num_denoiser_evals`` is the cost.
        """

        init = self.initial_latent(noise, marginal=marginal, clean=clean, scheduler=get_scheduler(pipe))
        call_kwargs.setdefault("output_type", "latent")
        call_kwargs.setdefault("progress", False)
        return freeinit(
            pipe, settings=self.settings, latents=init,
            generator=generator if generator is not None else torch.Generator().manual_seed(0), **call_kwargs,
        )


def default_strategies(num_iters: int = 4, **filter_kwargs: Any) -> list[InitStrategy]:
    """The strategies of issue 8: oracle, spectrum-matched, FreeInit same / fresh / variance-preserving.

    FreeInit variants run ``num_iters`` passes and report every iteration (``report_passes=True``); plain
    sampling is their shared pass 0, which :func:`evaluate_strategies` reports as ``"plain"`` (add
    ``InitStrategy("plain")`` yourself with ``fast_sampling=True``). ``filter_kwargs`` (``method``, ``d_s``,
    ``d_t``, ``order``, ``fast_sampling``) apply to all.
    """
    fi = dict(num_iters=num_iters, report_passes=True, **filter_kwargs)
    base = {k: v for k, v in filter_kwargs.items() if k != "fast_sampling"}
    return [
        InitStrategy("oracle", init="oracle", **base),
        InitStrategy("spectrum-matched", init="spectrum_matched", **base),
        InitStrategy("FreeInit same", renoise="same", **fi),
        InitStrategy("FreeInit fresh", renoise="fresh", **fi),
        InitStrategy("FreeInit same VP", renoise="same", mix="variance_preserving", **fi),
    ]


# ----------------------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------------------
def _consistency(video: torch.Tensor) -> np.ndarray:

    bound = float(video.abs().max()) + 1.0  # an affine map without clipping (the cosine of centred frames ignores it)
    return frame_cosine_similarity(video, reference="first", value_range=(-bound, bound)).numpy()


def _dynamics(video: torch.Tensor) -> np.ndarray:
    d = video.double()[:, :, 1:] - video.double()[:, :, :-1]
    return d.pow(2).mean(dim=(1, 2, 3, 4)).sqrt().numpy()


def _band_power_db(z: torch.Tensor, offset: torch.Tensor, edges: np.ndarray) -> np.ndarray:

    p = band_power(z.double() - offset.view(1, -1, 1, 1, 1), edges=edges).mean(dim=1)  # (B, K)
    return p.numpy()


def _row_plan(strategies: Sequence[InitStrategy]) -> list[tuple[InitStrategy, list[tuple[int, str]]]]:
    """Which passes of which strategy become rows, and their labels.

    A strategy reports its last pass under its name, or with ``report_passes`` every FreeInit iteration
    ``i >= 1`` as ``"<name> ×i"``. Unless a strategy is named ``"plain"``, pass 0 of the first noise-started
    FreeInit strategy with ``report_passes`` is reported as ``"plain"``: it *is* plain sampling from the same
    noise with the same steps (without ``fast_sampling``), so no separate run is needed.
    """
    plain_needed = not any(s.name == "plain" for s in strategies)
    plan = []
    for s in strategies:
        if s.report_passes and s.num_iters > 1:
            passes = [(i, f"{s.name} ×{i}") for i in range(1, s.num_iters)]
            if plain_needed and s.init == "noise" and not s.fast_sampling:
                passes.insert(0, (0, "plain"))
                plain_needed = False
        else:
            passes = [(s.num_iters - 1, s.name)]
        plan.append((s, passes))
    return plan


def evaluate_strategies(
    pipe: Any,
    strategies: Sequence[InitStrategy],
    *,
    data: torch.Tensor,
    marginal: TerminalMarginal,
    oracle_latents: torch.Tensor | None = None,
    num_videos: int = 64,
    seed: int = 0,
    num_inference_steps: int | None = None,
    num_bands: int = 6,
):
    """Run each strategy on the same ``num_videos`` seeded noises and measure it against the data.

    Parameters
    ----------
    pipe
        A pipeline in ``(batch, channel, frame, height, width)`` layout whose ``output_type="latent"`` output is
        the video (the embedded default and analytic pipelines).
    strategies
        :class:`InitStrategy` list (see :func:`default_strategies`); names must be unique.
    data
        ``(M, C, F, H, W)`` clean videos of the training distribution (held out), ``M >= 2``: the target.
    marginal
        :class:`TerminalMarginal` of the training data (for ``"spectrum_matched"``, ``a_T``/``b_T`` and the mean
        field the band power is measured around).
    oracle_latents
        ``(num_videos, ...)`` clean latents for ``"oracle"`` (other than ``data``).
    num_videos, seed
        Videos per strategy; ``seed`` draws the shared noises ``eps`` (and the FreeInit ``eta`` generator).
    num_inference_steps
        Sampler steps of every pass (default: the pipeline's stored sampler, ``pipe.default_num_inference_steps``,
        else 25).
    num_bands
        Radial bands of the band power (default edges of :func:`freeinit_lab.spectral.default_band_edges`).

    Returns
    -------
    xarray.Dataset
        dims ``row`` (one per strategy, or per FreeInit iteration with ``report_passes``), ``video``, ``band``,
        ``data_video``; variables ``consistency``, ``dynamics`` (row, video), ``band_power_T`` (row, video, band;
        linear), ``evals`` (row; denoiser evaluations per video), ``data_consistency``, ``data_dynamics``
        (data_video), ``data_band_power_T`` (data_video, band: band power of ``a_T x_0 + b_T eps`` for the data);
        coords ``strategy``, ``freeinit_iterations``, ``init`` along ``row``.
    """
    import xarray as xr
    num_inference_steps = resolve_num_inference_steps(pipe, num_inference_steps, fallback=25)


    strategies = list(strategies)
    if not strategies:
        raise ValueError(
            "strategies is empty: pass at least one InitStrategy, e.g. default_strategies() or "
            "[InitStrategy('plain'), InitStrategy('FreeInit', num_iters=3)]"
        )
    bad = [type(s).__name__ for s in strategies if not isinstance(s, InitStrategy)]
    if bad:
        raise TypeError(f"strategies must be InitStrategy objects (see default_strategies()); got {bad}")
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise ValueError(f"strategy names must be unique, got {names}")
    num_videos = require_int("num_videos", num_videos, low=2, why=" for standard errors (use >= 64)")
    num_bands = require_int("num_bands", num_bands, why=" (radial frequency bands of band_power_T)")
    require_frames("evaluate_strategies", marginal.shape)
    shape = (num_videos, *marginal.shape)
    data = torch.as_tensor(data).float()
    if data.dim() != 5 or tuple(data.shape[1:]) != marginal.shape or data.shape[0] < 2:
        raise ValueError(f"data has shape {tuple(data.shape)}; expected (>= 2, {', '.join(map(str, marginal.shape))})")
    _check_video(data, "data")  # NaN/inf: refused now, not after every strategy has been sampled
    if any(s.init == "oracle" for s in strategies):
        if oracle_latents is None or tuple(oracle_latents.shape) != shape:
            raise ValueError(f"an 'oracle' strategy needs oracle_latents of shape {shape}")
        _check_video(oracle_latents, "oracle_latents")
    gen = torch.Generator().manual_seed(require_seed(seed))
    eps = torch.randn(shape, generator=gen)
    data_noise = torch.randn(data.shape, generator=gen)
    eta_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    edges = _require_nonempty_bands(shape, None, num_bands, who="evaluate_strategies")
    offset = marginal.a_T * marginal.mean

    rows: list[dict[str, Any]] = []
    for s, passes in _row_plan(strategies):
        res = s.run(pipe, eps, generator=torch.Generator().manual_seed(eta_seed), marginal=marginal,
                    clean=oracle_latents, num_inference_steps=num_inference_steps)
        for i, label in passes:
            it = res.iterations[i]
            out = it.clean_latent.float()
            rows.append(dict(
                label=label, strategy=s.name, iters=i, init=s.init,
                evals=sum(r.num_denoiser_evals for r in res.iterations[: i + 1]),
                consistency=_consistency(out), dynamics=_dynamics(out),
                band=_band_power_db(it.initial_latent, offset, edges),
            ))
    data_zT = marginal.diffuse(data.double(), data_noise.double())
    ds = xr.Dataset(
        {
            "consistency": (("row", "video"), np.stack([r["consistency"] for r in rows]),
                            {"long_name": "first-frame cosine of mean-removed frames", "units": "1"}),
            "dynamics": (("row", "video"), np.stack([r["dynamics"] for r in rows]),
                         {"long_name": "RMS change between consecutive frames", "units": "pixel value"}),
            "band_power_T": (("row", "video", "band"), np.stack([r["band"] for r in rows]),
                             {"long_name": "band power of the last pass's initial latent minus a_T mu",
                              "units": "x unit white noise"}),
            "evals": ("row", np.array([r["evals"] for r in rows]), {"long_name": "denoiser evaluations per video"}),
            "data_consistency": ("data_video", _consistency(data), {"long_name": "consistency of the data"}),
            "data_dynamics": ("data_video", _dynamics(data), {"long_name": "dynamics of the data"}),
            "data_band_power_T": (("data_video", "band"), _band_power_db(data_zT, offset, edges),
                                  {"long_name": "band power of the training z_T = a_T x0 + b_T eps of the data"}),
        },
        coords={
            "row": [r["label"] for r in rows],
            "strategy": ("row", [r["strategy"] for r in rows]),
            "freeinit_iterations": ("row", np.array([r["iters"] for r in rows])),
            "init": ("row", [r["init"] for r in rows]),
            "video": np.arange(num_videos),
            "data_video": np.arange(data.shape[0]),
            **band_coords(edges),
        },
        attrs=dict(seed=int(seed), num_inference_steps=int(num_inference_steps), pipeline=type(pipe).__name__,
                   a_T=marginal.a_T, b_T=marginal.b_T, timestep=marginal.timestep),
    )
    return ds


def _se(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) / math.sqrt(x.size))


def summarize_strategies(ds, baseline: str | None = "plain"):
    """Table of :func:`evaluate_strategies`: one row per strategy row of ``ds`` plus ``"data"``.

    Columns: ``evals``; ``consistency``, ``consistency_se``, ``d_consistency`` (mean − data mean),
    ``dynamics``, ``dynamics_se``, ``d_dynamics``; ``band_db`` (mean over bands of |10 log10(P / P_data)|, the
    band-power distance to the training ``z_T``); ``distance`` = ``sqrt((Δc / σ_c)² + (Δd / σ_d)²)`` with
    ``σ`` the data's between-video standard deviations (distance to the data in units of the data's own spread);
    ``distance_se`` (delta method, strategy and data sampling errors); paired tests against ``baseline``
    (``t_consistency``, ``p_consistency``, ``t_dynamics``, ``p_dynamics``) and Welch tests against the data
    (``p_consistency_data``, ``p_dynamics_data``).

    ``baseline`` must be one of ``ds.row`` (a ``ValueError`` lists them otherwise); ``baseline=None`` leaves the
    paired-test columns out.

    Returns
    -------
    pandas.DataFrame
        Indexed by row label.
    """
    import pandas as pd


    dc, dd = ds["data_consistency"].values, ds["data_dynamics"].values
    sc, sd = dc.std(ddof=1), dd.std(ddof=1)
    p_data = ds["data_band_power_T"].mean("data_video").values
    rows = ds.row.values.tolist()
    if baseline is not None and baseline not in rows:
        raise ValueError(
            f"baseline={baseline!r} is not a row of the results; choose one of {rows} (the paired tests compare "
            "every row with it), or pass baseline=None to leave the paired tests out"
        )
    base_c = ds["consistency"].sel(row=baseline).values if baseline is not None else None
    base_d = ds["dynamics"].sel(row=baseline).values if baseline is not None else None
    out = []
    for label in ds.row.values.tolist():
        c = ds["consistency"].sel(row=label).values
        d = ds["dynamics"].sel(row=label).values
        zc, zd = (c.mean() - dc.mean()) / sc, (d.mean() - dd.mean()) / sd
        dist = math.hypot(zc, zd)
        se_zc = math.sqrt(_se(c) ** 2 + _se(dc) ** 2) / sc
        se_zd = math.sqrt(_se(d) ** 2 + _se(dd) ** 2) / sd
        dist_se = math.sqrt((zc * se_zc) ** 2 + (zd * se_zd) ** 2) / dist if dist > 0 else float("nan")
        p = ds["band_power_T"].sel(row=label).mean("video").values
        row = dict(
            row=label, strategy=str(ds["strategy"].sel(row=label).values), evals=int(ds["evals"].sel(row=label)),
            consistency=c.mean(), consistency_se=_se(c), d_consistency=c.mean() - dc.mean(),
            dynamics=d.mean(), dynamics_se=_se(d), d_dynamics=d.mean() - dd.mean(),
            band_db=float(np.mean(np.abs(10 * np.log10(p / p_data)))), distance=dist, distance_se=dist_se,
            p_consistency_data=_welch(c, dc)["p"], p_dynamics_data=_welch(d, dd)["p"],
        )
        if base_c is not None and label != baseline:
            tc, td = paired_test(c, base_c), paired_test(d, base_d)
            row.update(t_consistency=tc["t"], p_consistency=tc["p"], t_dynamics=td["t"], p_dynamics=td["p"])
        out.append(row)
    out.append(dict(row="data", strategy="data", evals=0, consistency=dc.mean(), consistency_se=_se(dc),
                    d_consistency=0.0, dynamics=dd.mean(), dynamics_se=_se(dd), d_dynamics=0.0, band_db=0.0,
                    distance=0.0))
    return pd.DataFrame(out).set_index("row")


# ----------------------------------------------------------------------------------------------------------------
# closed forms for the analytic Gaussian reference
# ----------------------------------------------------------------------------------------------------------------
def _analytic_unet(pipe: Any):
    from freeinit_lab.embedded.models import GaussianVideoDenoiser

    try:
        denoisers = get_denoisers(pipe)  # at the attribute(s) the pipeline's layout names
    except AttributeError:
        denoisers = []
    if len(denoisers) != 1 or not isinstance(denoisers[0], GaussianVideoDenoiser):
        got = ", ".join(type(m).__name__ for m in denoisers) or "no denoiser"
        raise TypeError(
            "closed forms exist only for the analytic Gaussian reference: pass load_analytic_pipeline(...), whose "
            f"denoiser is a GaussianVideoDenoiser (got {got})"
        )
    return denoisers[0]


def analytic_gain(pipe: Any, num_inference_steps: int, *, return_offset: bool = False):
    """Per-bin gain ``G_c(k)`` of a deterministic sampler with the exact Gaussian denoiser, in the prior's colour basis.

    With ``Y = FFT3D(U^T z)`` (ortho) and ``m = FFT3D(U^T μ)`` (the prior mean, DC bin only), the denoiser at
    timestep ``t`` is exact for ``W = Y - a_t m``: ``ε̂ = b_t W / (a_t² S + b_t²)``. One DDIM step is
    ``Y_prev = a'_t m + g_t (Y - a_t m)``, ``g_t = (a'_t a_t S + b'_t b_t) / (a_t² S + b_t²)``, where ``a'_t`` is
    the coefficient of ``prev_timestep = t - T // N`` exactly as ``DDIMScheduler.step`` computes it (which is
    *not* the next timestep of the ``linspace`` grid, so the mean is re-centred slightly differently each step)
    and the scheduler's ``final_alpha_cumprod`` at the last step. Composed: the pipeline's ``output_type="latent"``
    result is ``Y_out = G Y_in + K m`` with ``G = prod_t g_t``.

    A multistep solver (DPM-Solver++, UniPC) is linear in the current sample and its stored model outputs too, and
    the denoiser is diagonal per bin, so the output is again ``G Y_in + K m``; its ``G`` and ``K`` come from the
    scheduler's own ``step`` run on the coefficients (the state ``Y = g Y_in + k m`` as the pair ``(g, k)``, the
    model output ``ε̂ = c_t (g, k - a_t)``, ``c_t = b_t / (a_t² S + b_t²)``), exact to the scheduler's float32.

    Parameters
    ----------
    pipe
        The analytic pipeline (:func:`freeinit_lab.pipelines.load_analytic_pipeline`) with a deterministic
        scheduler: DDIM (η = 0), DPM-Solver multistep (not its SDE variants) or UniPC, without thresholding.
    num_inference_steps
        Sampler steps.
    return_offset
        Also return ``K`` (only the DC bin of ``K m`` is non-zero).

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor)
        ``G`` (and ``K``), ``(C, F, H, W)`` float64, FFT order.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    unet = _analytic_unet(pipe)
    sched = get_scheduler(pipe)
    if not isinstance(sched, (DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler)):
        raise TypeError(f"analytic_gain needs a deterministic DDIM, DPM-Solver multistep or UniPC scheduler "
                        f"(got {type(sched).__name__}); set pipe.{resolve_layout(pipe).scheduler} to one "
                        "of them")
    cfg = sched.config
    if "sde" in str(cfg.get("algorithm_type", "")) or cfg.get("thresholding", False):
        raise TypeError(f"analytic_gain needs a deterministic, linear sampler; {type(sched).__name__} has "
                        f"algorithm_type={cfg.get('algorithm_type')!r}, thresholding={cfg.get('thresholding')}: "
                        "use algorithm_type='dpmsolver++' without thresholding")
    if not isinstance(sched, DDIMScheduler):
        return _stepped_gain(sched, unet.power.double(), int(num_inference_steps), return_offset)
    sched = copy.deepcopy(sched)  # set_timesteps on a copy: the caller's scheduler keeps its state
    sched.set_timesteps(int(num_inference_steps))
    ac = sched.alphas_cumprod.double()
    final = float(sched.final_alpha_cumprod)
    S = unet.power.double()
    gain = torch.ones_like(S)
    offset = torch.zeros_like(S)
    step = sched.config.num_train_timesteps // sched.num_inference_steps
    for t in sched.timesteps.tolist():
        ab = float(ac[int(t)])
        prev = int(t) - step
        abp = float(ac[prev]) if prev >= 0 else final
        a, b, ap, bp = math.sqrt(ab), math.sqrt(1 - ab), math.sqrt(abp), math.sqrt(1 - abp)
        g = (ap * a * S + bp * b) / (a * a * S + b * b)
        gain = gain * g
        offset = g * offset + (ap - g * a)
    return (gain, offset) if return_offset else gain


def _stepped_gain(sched: Any, S: torch.Tensor, num_inference_steps: int, return_offset: bool):
    """:func:`analytic_gain` by the scheduler's own ``step`` on the coefficient pair ``(g, k)`` of
    ``Y = g Y_in + k m`` (a copy of ``sched``; the caller's is untouched)."""
    sch = copy.deepcopy(sched)
    sch.set_timesteps(num_inference_steps)
    ac = sch.alphas_cumprod.double()
    state = torch.stack([torch.ones_like(S), torch.zeros_like(S)])  # (g, k)
    for t in sch.timesteps:
        ab = float(ac[int(t)])
        a, b = math.sqrt(ab), math.sqrt(1.0 - ab)
        c = b / (a * a * S + b * b)
        eps = torch.stack([c * state[0], c * (state[1] - a)])
        state = sch.step(eps, t, state).prev_sample.double()
    return (state[0], state[1]) if return_offset else state[0]


def analytic_prediction(
    pipe: Any,
    strategies: Sequence[InitStrategy],
    marginal: TerminalMarginal,
    *,
    num_inference_steps: int | None = None,
    num_bands: int = 6,
):
    """Closed-form expectations of :func:`evaluate_strategies` on the analytic Gaussian reference.

    Every strategy is linear in Gaussian inputs per frequency bin (in the prior's colour basis ``U``), so each
    pass's input is ``e + α u_0 + ν``: a deterministic mean ``e`` (DC bin only), a multiple of the pass-0 input's
    random part ``u_0`` (variance ``V_0``: 1 for noise, ``a_T² S + b_T²`` for the oracle, ``diag(U^T Σ_H U)`` for
    the spectrum-matched latent) and an independent part of variance ``v``. A FreeInit pass maps
    ``(α, v) -> (w_low (a_T G α + b_T), w_low² a_T² G² v + w_high²)`` with the same noise and
    ``(w_low a_T G α, w_low² (a_T² G² v + b_T²) + w_high²)`` with fresh noise (``w = H, 1 - H`` for FreeInit's mix,
    :func:`~freeinit_lab.spectral.variance_preserving_weights` for the variance-preserving one), where ``G`` is
    :func:`analytic_gain`. The output's per-bin power is ``G² (α² V_0 + v)``.

    From those powers: ``band_power_T`` is exact (expected band power of the initial latent minus ``a_T μ``,
    channel mean); ``consistency`` and ``dynamics`` are ratios of expectations,
    ``mean_f Σ P cos(2π n_t f / F) / Σ P`` (DC excluded) and ``sqrt(Σ P 2 (1 - cos(2π n_t / F)) / (F C H W))``,
    which the per-video means approach as frames grow (within ~1 % at 8×16×16). The ``"data"`` row uses the prior
    itself (``P = S``); the oracle's clean latents are assumed to be prior draws.

    Returns
    -------
    xarray.Dataset
        dims ``row`` (the rows :func:`evaluate_strategies` makes, plus ``"data"``) and ``band``; variables
        ``consistency``, ``dynamics``, ``evals`` (row) and ``band_power_T`` (row, band).
    """
    import xarray as xr
    num_inference_steps = resolve_num_inference_steps(pipe, num_inference_steps, fallback=25)


    unet = _analytic_unet(pipe)
    S = unet.power.double()  # (C, F, H, W)
    U = unet.color_basis.double()
    mu_pca = U.T @ unet.mean.double()
    C, F, Hh, W = S.shape
    N = F * Hh * W
    if marginal.shape != (C, F, Hh, W):
        raise ValueError(f"marginal is for latents {marginal.shape}, the analytic pipeline samples {(C, F, Hh, W)}")
    a_T, b_T = marginal.a_T, marginal.b_T
    m = torch.zeros(C, F, Hh, W, dtype=torch.float64)
    m[:, 0, 0, 0] = mu_pca * math.sqrt(N)  # FFT of the constant field U^T mu (DC bin only)
    ref = torch.zeros_like(m)
    ref[:, 0, 0, 0] = (U.T @ (a_T * marginal.mean.double())) * math.sqrt(N)  # the a_T mu the band power is around

    edges = default_band_edges((F, Hh, W), num_bands)
    bands = band_masks((F, Hh, W), edges=edges).double()  # (K, F, H, W)
    nt = torch.fft.fftfreq(F, d=1.0 / F).double().view(F, 1, 1)  # integer temporal bin index
    lags = torch.arange(1, F, dtype=torch.float64)
    cos_lag = torch.cos(2 * math.pi * nt[None] * lags.view(-1, 1, 1, 1) / F)  # (F-1, F, 1, 1)
    dc = torch.zeros(F, Hh, W, dtype=torch.bool)
    dc[0, 0, 0] = True

    def summary(power_out: torch.Tensor, power_init: torch.Tensor) -> tuple[float, float, np.ndarray]:
        p = power_out.sum(0).masked_fill(dc, 0.0)  # channel sum, DC removed by the metrics' centring
        cons = float(((p[None] * cos_lag).sum(dim=(1, 2, 3)) / p.sum()).mean())
        dyn = math.sqrt(float((p * 2 * (1 - torch.cos(2 * math.pi * nt / F))).sum()) / (F * C * Hh * W))
        band = (bands[None] * power_init[:, None]).sum(dim=(2, 3, 4)) / bands.sum(dim=(1, 2, 3))
        return cons, dyn, band.mean(0).numpy()

    gains: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def gain(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        if steps not in gains:
            gains[steps] = analytic_gain(pipe, steps, return_offset=True)
        return gains[steps]

    rows = []
    for s, passes in _row_plan(strategies):
        labels = dict(passes)
        H = s.lowpass((F, Hh, W))
        if s.init == "noise":
            e0, V0 = torch.zeros_like(m), torch.ones_like(S)
        elif s.init == "oracle":
            e0, V0 = a_T * m, a_T**2 * S + b_T**2
        else:
            cov = marginal.covariance_at_T(H)  # (F, H, W, C, C)
            Uc = U.to(cov.dtype)
            V0 = torch.einsum("dc,fhwde,ec->cfhw", Uc.conj(), cov, Uc).real
            e0 = a_T * float(H[0, 0, 0]) * (U.T @ marginal.mean.double()).view(C, 1, 1, 1) * math.sqrt(N) * dc
        if s.mix == "freeinit":
            w_low, w_high = H, 1 - H
        else:
            w_low, w_high = variance_preserving_weights(H)
        steps = s.settings.steps_per_pass(num_inference_steps)
        e, alpha, v = e0.clone(), torch.ones_like(S), torch.zeros_like(S)
        evals = 0
        for i in range(s.num_iters):
            G, K = gain(steps[i])
            evals += steps[i]
            p_init = (e - ref).pow(2) + alpha**2 * V0 + v
            p_out = G**2 * (alpha**2 * V0 + v)
            if i in labels:
                cons, dyn, band = summary(p_out, p_init)
                rows.append((labels[i], cons, dyn, band, evals))
            if i == s.num_iters - 1:
                break
            # the pass's output (mean G e + K m), diffused to T and mixed
            e_out = G * e + K * m
            if s.renoise == "same":
                e_T, alpha_T, v_T = a_T * e_out + b_T * e0, a_T * G * alpha + b_T, a_T**2 * G**2 * v
            else:
                e_T, alpha_T, v_T = a_T * e_out, a_T * G * alpha, a_T**2 * G**2 * v + b_T**2
            e, alpha, v = w_low * e_T, w_low * alpha_T, w_low**2 * v_T + w_high**2
    # the data: the prior itself; its training z_T has power a_T^2 S + b_T^2 around a_T mu
    p_data_T = (a_T * m - ref).pow(2) + a_T**2 * S + b_T**2
    cons, dyn, band = summary(S, p_data_T)
    rows.append(("data", cons, dyn, band, 0))
    return xr.Dataset(
        {
            "consistency": ("row", np.array([r[1] for r in rows])),
            "dynamics": ("row", np.array([r[2] for r in rows])),
            "band_power_T": (("row", "band"), np.stack([r[3] for r in rows])),
            "evals": ("row", np.array([r[4] for r in rows])),
        },
        coords={"row": [r[0] for r in rows], "band": np.arange(len(edges) - 1)},
        attrs={"note": "closed form (band_power_T exact; consistency, dynamics as ratios of expectations)"},
    )


# ----------------------------------------------------------------------------------------------------------------
# closed forms of the FreeInit controls (freeinit_lab.controls) on the analytic Gaussian reference
# ----------------------------------------------------------------------------------------------------------------
def analytic_controls(
    pipe: Any,
    arms: Sequence[str] | None = None,
    *,
    num_iters: int = 2,
    method: str = "gaussian",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4.0,
    num_inference_steps: int | None = None,
    num_bands: int = 6,
    amplitude_target: Sequence[float] | None = None,
):
    """Closed forms of :func:`freeinit_lab.decomposition.decompose_freeinit`'s arms on the analytic model.

    In the prior's colour basis and the ortho-normalised 3-D FFT every arm is linear per bin in independent unit
    white inputs (``ε``, and per pass ``η`` and ``ε'``), so a latent is ``e + α ε̂ + ν``: a mean ``e`` (DC bin
    only), a multiple ``α`` of this video's initial noise and an independent part of variance ``v``. The
    deterministic sampler (DDIM, DPM-Solver++, UniPC) with the exact denoiser maps
    ``(e, α, v) -> (G e + K m, G α, G² v)`` (:func:`analytic_gain`). One reinitialisation, with ``w = (H, 1 - H)``
    (FreeInit's mix) or the variance-preserving weights, maps the previous output
    ``(e_o, α_o, v_o)`` to ``(w_low e_T, w_low α_T, w_low² v_T + w_high²)`` where

    * ``signal="own"`` (FreeInit): ``e_T = a_T e_o``, ``α_T = a_T α_o``, ``v_T = a_T² v_o``;
    * ``signal="other"`` (``shuffled_low``): ``e_T = a_T e_o``, ``α_T = 0``, ``v_T = a_T² (α_o² + v_o)`` — the other
      video's output is independent of this video's noises (single-cycle derangement, ``n >= num_iters``);
    * ``signal="none"`` (``mask_only``): ``e_T = α_T = v_T = 0``;

    plus ``b_T`` on ``α_T`` (same ``ε``) or ``b_T²`` on ``v_T`` (fresh ``ε'``). ``amplitude_matched`` is
    ``(0, sqrt(T_k), 0)`` with the per-band target ``T_k``; ``plain`` is ``(0, 1, 0)``. The initial latent's
    expected power per bin is ``e² + α² + v`` (``mask_only``: ``H² b_T² + (1 - H)²``; ``variance_preserving``:
    ``w_low² (…) + w_high²``), the output's ``(G e + K m)² + G² (α² + v)``.

    Parameters
    ----------
    pipe
        The analytic pipeline (:func:`freeinit_lab.pipelines.load_analytic_pipeline`) with a deterministic
        scheduler (as :func:`analytic_gain` accepts).
    arms
        Arm names (:data:`freeinit_lab.controls.ARMS`); default all.
    num_iters, method, d_s, d_t, order, num_inference_steps, num_bands
        As in :func:`~freeinit_lab.decomposition.decompose_freeinit` (same sampler steps in every pass).
    amplitude_target
        ``amplitude_matched``'s per-band power (what the decomposition records as ``amplitude_target``); default
        the prior's own, ``a_T² mean_band(mean_c S) + b_T²``.

    Returns
    -------
    xarray.Dataset
        ``band_power_init``, ``band_power`` (arm, band) exact expectations (channel mean, not mean-removed, as the
        decomposition measures them); ``variance_init`` (arm, freq_frame, freq_height, freq_width) the initial
        latent's expected power per bin (channel mean, FFT order); ``consistency``, ``dynamics``, ``contrast``
        (arm) as ratios of expectations (approach the per-video means as the video grows).
    """
    import xarray as xr
    num_inference_steps = resolve_num_inference_steps(pipe, num_inference_steps, fallback=25)


    unet = _analytic_unet(pipe)
    arms = list(ARMS) if arms is None else [arms] if isinstance(arms, str) else list(arms)  # one name: that arm
    unknown = [a for a in arms if a not in CONTROL_ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; valid arms are {', '.join(CONTROL_ARMS)}")
    num_iters = require_int("num_iters", num_iters, low=2, why=" (one FreeInit iteration at least)")
    S = unet.power.double()
    U = unet.color_basis.double()
    C, F, Hh, W = S.shape
    N = F * Hh * W
    schedule = _schedule_of(get_scheduler(pipe))
    a_T, b_T = (float(v) for v in schedule.coefficients(schedule.terminal_timestep))
    m = torch.zeros(C, F, Hh, W, dtype=torch.float64)
    m[:, 0, 0, 0] = (U.T @ unet.mean.double()) * math.sqrt(N)
    G, K = analytic_gain(pipe, num_inference_steps, return_offset=True)
    edges = default_band_edges((F, Hh, W), num_bands)
    bands = band_masks((F, Hh, W), edges=edges).double()
    counts = bands.sum(dim=(1, 2, 3))
    if amplitude_target is None:
        target = a_T**2 * (bands * S.mean(0)).sum(dim=(1, 2, 3)) / counts + b_T**2
    else:
        target = torch.as_tensor(np.asarray(amplitude_target, dtype=np.float64))
        if target.shape != (len(edges) - 1,):
            raise ValueError(f"amplitude_target must hold {len(edges) - 1} band powers; got shape {tuple(target.shape)}")
    amp = target[band_index((F, Hh, W), edges=edges)].sqrt().expand(C, F, Hh, W)

    nt = torch.fft.fftfreq(F, d=1.0 / F).double().view(F, 1, 1)
    lags = torch.arange(1, F, dtype=torch.float64)
    cos_lag = torch.cos(2 * math.pi * nt[None] * lags.view(-1, 1, 1, 1) / F)
    dc = torch.zeros(F, Hh, W, dtype=torch.bool)
    dc[0, 0, 0] = True
    spatial_dc = torch.zeros(F, Hh, W, dtype=torch.bool)
    spatial_dc[:, 0, 0] = True

    def band_mean(p: torch.Tensor) -> np.ndarray:
        return ((bands * p.mean(0)).sum(dim=(1, 2, 3)) / counts).numpy()

    def out(state):
        e, al, v = state
        return G * e + K * m, G * al, G**2 * v

    zeros = torch.zeros_like(S)
    rows = {}
    for name in arms:
        arm = CONTROL_ARMS[name]
        if arm.amplitude_matched:
            state = (zeros, amp, zeros)
        elif arm.signal is None:
            state = (zeros, torch.ones_like(S), zeros)
        else:
            H = arm_lowpass(arm, (F, Hh, W), method, d_s, d_t, order, dtype=torch.float64)
            w_low, w_high = (H, 1 - H) if arm.mix == "freeinit" else variance_preserving_weights(H)
            state = (zeros, torch.ones_like(S), zeros)  # the shared plain pass
            for _ in range(1, int(num_iters) if arm.chained else 2):
                e_o, al_o, v_o = out(state)
                if arm.signal == "own":
                    e_T, al_T, v_T = a_T * e_o, a_T * al_o, a_T**2 * v_o
                elif arm.signal == "other":
                    e_T, al_T, v_T = a_T * e_o, zeros, a_T**2 * (al_o**2 + v_o)
                else:
                    e_T, al_T, v_T = zeros, zeros, zeros
                if arm.renoise == "same":
                    al_T = al_T + b_T
                else:
                    v_T = v_T + b_T**2
                state = (w_low * e_T, w_low * al_T, w_low**2 * v_T + w_high**2)
        e, al, v = state
        p_init = e**2 + al**2 + v
        e_o, al_o, v_o = out(state)
        p_out = e_o**2 + al_o**2 + v_o
        p_rand = (al_o**2 + v_o).sum(0)  # channel sum of the random part (the metrics remove the mean colour)
        p_c = p_rand.masked_fill(dc, 0.0)
        cons = float(((p_c[None] * cos_lag).sum(dim=(1, 2, 3)) / p_c.sum()).mean())
        dyn = math.sqrt(float((p_rand * 2 * (1 - torch.cos(2 * math.pi * nt / F))).sum()) / (C * N))
        con = math.sqrt(float(p_rand.masked_fill(spatial_dc, 0.0).sum()) / (C * N))
        rows[name] = dict(band_power_init=band_mean(p_init), band_power=band_mean(p_out), variance_init=p_init.mean(0),
                          consistency=cons, dynamics=dyn, contrast=con)
    return xr.Dataset(
        {
            "band_power_init": (("arm", "band"), np.stack([rows[a]["band_power_init"] for a in arms]),
                                {"long_name": "expected band power of the last pass's initial latent",
                                 "units": "x unit white noise"}),
            "band_power": (("arm", "band"), np.stack([rows[a]["band_power"] for a in arms]),
                           {"long_name": "expected band power of the final clean latent", "units": "x unit white noise"}),
            "variance_init": (("arm", "freq_frame", "freq_height", "freq_width"),
                              torch.stack([rows[a]["variance_init"] for a in arms]).numpy(),
                              {"long_name": "expected power per FFT bin of the initial latent (channel mean)"}),
            "consistency": ("arm", np.array([rows[a]["consistency"] for a in arms])),
            "dynamics": ("arm", np.array([rows[a]["dynamics"] for a in arms])),
            "contrast": ("arm", np.array([rows[a]["contrast"] for a in arms])),
            "amplitude_target": ("band", target.numpy()),
        },
        coords={"arm": arms, **band_coords(edges)},
        attrs={"note": "closed form: band powers exact expectations; consistency, dynamics, contrast ratios of "
                       "expectations", "a_T": a_T, "b_T": b_T, "num_iters": int(num_iters),
               "num_inference_steps": int(num_inference_steps)},
    )


# ----------------------------------------------------------------------------------------------------------------
# measured against the closed forms: ratios of means, the estimators of the closed forms' ratios of expectations
# ----------------------------------------------------------------------------------------------------------------
def pooled_metrics(videos: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Consistency, dynamics and contrast of a set of videos as ratios of means, each with its standard error.

    :func:`analytic_controls` and :func:`analytic_prediction` give consistency, dynamics and contrast as *ratios of
    expectations*; the per-video metrics (:func:`~freeinit_lab.analysis.metrics.frame_cosine_similarity`, the RMS
    frame change) averaged over videos are *means of ratios*, which differ from them by a bias that does not shrink
    with more videos. The estimators here pool the numerators and denominators over the ``n`` videos first, so
    they converge to exactly the closed forms (bias ``O(1/n)``, below the ``O(1/sqrt(n))`` sampling error). With
    ``x̃`` each video minus its mean colour (per channel, over frames and pixels) and ``x̃_f`` its frame ``f``:

    .. math::
        \\mathrm{consistency} = \\frac{1}{F - 1} \\sum_{l=1}^{F-1}
            \\frac{\\sum_v \\langle \\tilde x_{v,0}, \\tilde x_{v,l} \\rangle}
                 {\\sqrt{\\sum_v \\lVert \\tilde x_{v,0} \\rVert^2 \\, \\sum_v \\lVert \\tilde x_{v,l} \\rVert^2}},
        \\qquad
        \\mathrm{dynamics} = \\sqrt{\\tfrac{1}{n} \\textstyle\\sum_v D_v^2},
        \\qquad
        \\mathrm{contrast} = \\sqrt{\\tfrac{1}{n} \\textstyle\\sum_v K_v^2}

    with ``D_v`` the video's RMS change between consecutive frames and ``K_v`` its RMS spatial deviation within a
    frame (the decomposition's ``dynamics`` and ``contrast``). Standard errors by the delta method: the s.e. of
    the mean of each video's influence ``ψ_v`` (for a ratio ``A / sqrt(B C)`` of means,
    ``ψ_v = (a_v − A) / sqrt(B C) − ½ (A / sqrt(B C)) ((b_v − B) / B + (c_v − C) / C)``; for ``sqrt(M)``,
    ``ψ_v = (m_v − M) / (2 sqrt(M))``).

    Parameters
    ----------
    videos
        ``(n, C, F, H, W)`` clean latents, ``n >= 2`` videos of ``F >= 2`` frames.

    Returns
    -------
    dict
        ``{"consistency": (value, se), "dynamics": (value, se), "contrast": (value, se)}``, floats (units: 1,
        latent units, latent units).

    Examples
    --------
    >>> v = torch.randn(64, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> m = pooled_metrics(v)                  # white noise: frames uncorrelated, unit variance
    >>> abs(m["consistency"][0]) < 4 * m["consistency"][1], round(m["dynamics"][0], 1)
    (True, 1.4)
    """
    if not isinstance(videos, torch.Tensor) or videos.dim() != 5:
        raise ValueError(f"videos must be a (n, C, F, H, W) tensor; got {getattr(videos, 'shape', type(videos))}: "
                         "stack the videos of one arm into one 5-D tensor")
    n, _, f = videos.shape[:3]
    if n < 2 or f < 2:
        raise ValueError(f"videos of shape {tuple(videos.shape)}: need at least 2 videos (for a standard error) "
                         "of at least 2 frames; pass more videos or frames")
    x = videos.detach().to("cpu", torch.float64)
    x = x - x.mean(dim=(2, 3, 4), keepdim=True)
    frames = x.transpose(1, 2).reshape(n, f, -1)  # (n, F, C·H·W)
    a = (frames[:, :1] * frames[:, 1:]).sum(-1).numpy()  # (n, F-1) <x̃_0, x̃_l>
    b = frames[:, 0].pow(2).sum(-1).numpy()  # (n,)
    c = frames[:, 1:].pow(2).sum(-1).numpy()  # (n, F-1)
    A, B, Cm = a.mean(0), b.mean(), c.mean(0)
    root = np.sqrt(B * Cm)
    ratio = A / root
    psi = ((a - A) / root - 0.5 * ratio * ((b - B)[:, None] / B + (c - Cm) / Cm)).mean(1)

    def se(influence: np.ndarray) -> float:
        return float(np.sqrt((influence**2).sum() / (n * (n - 1))))

    out = {"consistency": (float(ratio.mean()), se(psi))}
    d = x[:, :, 1:] - x[:, :, :-1]
    m_dyn = d.pow(2).mean(dim=(1, 2, 3, 4)).numpy()
    m_con = x.var(dim=(-2, -1), unbiased=False).mean(dim=(1, 2)).numpy()  # mean-colour removal leaves var alone
    for name, m in (("dynamics", m_dyn), ("contrast", m_con)):
        M = m.mean()
        out[name] = (float(np.sqrt(M)), se((m - M) / (2 * np.sqrt(M))))
    return out


def closed_form_comparison(videos: Mapping[str, torch.Tensor], *closed_forms: Any,
                           quantities: Sequence[str] = ("consistency", "dynamics", "band_power")):
    """Measured against closed form, per arm and quantity, with a z-score: the analytic model's check of the toolkit.

    For every arm of ``videos`` the first of ``closed_forms`` that has it (an :func:`analytic_controls` dataset,
    dim ``arm``, or an :func:`analytic_prediction` one, dim ``row``) gives the expectation; arms none of them has
    are left out, and so are quantities a dataset lacks (:func:`analytic_prediction` has no final band power).

    * ``consistency``, ``dynamics``, ``contrast``: the ratios of means of :func:`pooled_metrics`, which estimate
      exactly the closed forms' ratios of expectations, with their delta-method s.e.; ``per_video_mean`` is the
      mean of the per-video metric (a mean of ratios, what the tables report) and ``ratio_bias`` its difference
      from the ratio of means (the approximation the closed forms make for a per-video mean);
    * ``band_power`` (one row per band ``k``, labelled ``band_power[k]``): the mean over videos of the per-video
      band power of the final latent (:func:`freeinit_lab.spectral.band_power`, channel mean, not mean-removed,
      the decomposition's ``band_power``; an unbiased estimate of the exact expectation), s.e. ``sd / sqrt(n)``.

    ``z = (measured − closed_form) / se``: on a correct toolkit each ``z`` is approximately standard normal.

    Returns
    -------
    pandas.DataFrame
        Indexed by (arm, quantity); columns ``closed_form``, ``measured``, ``se``, ``z``, ``per_video_mean``,
        ``ratio_bias`` (NaN for band power).
    """
    import pandas as pd

    if not closed_forms:
        raise ValueError("pass at least one closed-form dataset (analytic_controls(...) or analytic_prediction(...))")
    known = ("consistency", "dynamics", "contrast", "band_power")
    quantities = (quantities,) if isinstance(quantities, str) else tuple(quantities)  # one name: that quantity
    bad = [q for q in quantities if q not in known]
    if bad:
        raise ValueError(f"unknown quantities {bad}; choose from {', '.join(known)}")
    rows = []
    for arm, v in videos.items():
        src = next((cf.sel({dim: arm}) for cf in closed_forms for dim in ("arm", "row")
                    if dim in cf.dims and arm in cf[dim].values), None)
        if src is None:
            continue
        pooled = pooled_metrics(v)
        per_video = {"consistency": _consistency(v), "dynamics": _dynamics(v)}
        if "contrast" in quantities:
            per_video["contrast"] = (v.double().var(dim=(-2, -1), unbiased=False).mean(dim=(1, 2)).sqrt().numpy())
        for q in quantities:
            if q not in src:
                continue
            if q == "band_power":
                edges = np.r_[src.band_lo.values, src.band_hi.values[-1]]
                p = band_power(v.double(), edges=edges).mean(dim=1).numpy()  # (n, K)
                for k in range(p.shape[1]):
                    cf, m, s = float(src[q].isel(band=k)), float(p[:, k].mean()), _se(p[:, k])
                    rows.append(dict(arm=arm, quantity=f"band_power[{k}]", closed_form=cf, measured=m, se=s,
                                     z=(m - cf) / s, per_video_mean=m, ratio_bias=np.nan))
            else:
                cf, (m, s) = float(src[q]), pooled[q]
                pv = float(per_video[q].mean())
                rows.append(dict(arm=arm, quantity=q, closed_form=cf, measured=m, se=s, z=(m - cf) / s,
                                 per_video_mean=pv, ratio_bias=pv - m))
    if not rows:
        raise ValueError(f"none of the arms {list(videos)} is in the closed forms given; pass the datasets of "
                         "analytic_controls / analytic_prediction that hold them")
    return pd.DataFrame(rows).set_index(["arm", "quantity"])


# the figure moved to freeinit_lab.viz.figures, reachable here for one release
__getattr__ = moved_attributes(__name__, "freeinit_lab.viz.figures", ("pareto_figure",))
