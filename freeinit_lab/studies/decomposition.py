"""How much of FreeInit's effect on a model is its low-frequency mechanism: a paired decomposition with controls.

:func:`decompose_freeinit` samples ``num_videos`` seeded initial noises ``ε`` on one pipeline and runs plain
sampling, FreeInit and the control arms of :mod:`freeinit_lab.controls` from the *same* ``ε`` (and the same fresh
noises ``η`` where arms mix), all batched, with the plain pass shared by every arm that starts from it. Per arm and
video it measures the final clean latent (``output_type="latent"``, canonical ``(batch, channel, frame, height,
width)``; for latent-diffusion models these are VAE latents, not pixels):

* ``consistency``: first-frame cosine of mean-removed frames (the paper's pairing, ``1`` = static);
* ``dynamics``: RMS change between consecutive frames (latent units);
* ``contrast``: RMS spatial deviation within a frame, ``sqrt(mean_{c,f} var_{h,w})`` (latent units);
* ``band_power``: mean power per FFT bin of each radial band (ortho-normalised 3-D FFT, unit white noise = 1,
  averaged over channels, not mean-removed), and ``band_power_init`` the same of the latent the last pass starts
  from;
* ``distance`` (with ``reference``): RMS over bands of ``10 log10(P_k(video) / mean_ref P_k)``, dB.

and, per control ``c`` and metric ``m``, the share of FreeInit's effect the control reproduces,

.. math::  \\mathrm{explained}_{c,m} = \\frac{\\overline{m_c - m_\\mathrm{plain}}}
                                           {\\overline{m_\\mathrm{freeinit} - m_\\mathrm{plain}}}

(means over videos; 1 = the control does all FreeInit does to ``m``, 0 = nothing) with a paired percentile
bootstrap over videos (the same resampled videos in every arm; ``num_bootstrap`` resamples, default 2000, seeded
by ``seed``; ``confidence`` default 0.95) in ``explained_low`` / ``explained_high``; ``effect`` holds each arm's
mean difference to ``plain`` with the same intervals.

Examples
--------
>>> import freeinit_lab as fl
>>> pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
>>> ds = fl.decompose_freeinit(pipe, num_videos=8, controls=["mask_only"], num_inference_steps=3, progress=False)
>>> ds.arm.values.tolist(), dict(ds.explained.sizes)["control"]
(['plain', 'freeinit', 'mask_only'], 1)
"""

from __future__ import annotations

import inspect
import json
import math
import time
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from freeinit_lab._compat import moved_attributes

from ..core.controls import (
    CONTROL_ARMS,
    CONTROLS,
    amplitude_matched_latent,
    amplitude_target,
    arm_lowpass,
    reinit_arm,
    single_cycle_derangement,
)
from ..core.dims import band_coords
from ..core.reinit import FreeInitSettings, settings_keywords
from ..core.schedules import get_schedule
from ..core.spectral import _check_video, _require_nonempty_bands, band_power, check_filter
from ..engine.loop import FreeInitNoGapWarning, _first_tensor
from ..hooks.layouts import check_channel_axis, get_layout, patch_attribute, require_pipeline_instance
from .strategies import _consistency, _dynamics
from .._checks import require_frames, require_int, require_seed

__all__ = [
    "decompose_freeinit",
    "decomposition_noises",
    "decomposition_table",
    "min_videos_for_bootstrap",
    "paired_bootstrap",
    "bootstrap_interval",
    "two_sample_interval",
]

_ORACLE_DESCRIPTION = "oracle: one pass from the training marginal a_T x_0 + b_T ε (reference x_0, same ε)"

_RESERVED = ("generator", "output_type", "return_dict", "num_videos_per_prompt", "batch_size")


# ----------------------------------------------------------------------------------------------------------------
# noises, bootstrap
# ----------------------------------------------------------------------------------------------------------------
def decomposition_noises(num_videos: int, shape: Sequence[int], seed: int, num_iters: int) -> dict[str, Any]:
    """Every random draw of :func:`decompose_freeinit`, in a fixed order independent of the arms chosen.

    From ``torch.Generator().manual_seed(seed)``: ``eps`` ``(N, *shape)``; then for each FreeInit pass
    ``i = 1 .. num_iters - 1`` ``eta[i - 1]`` and ``fresh[i - 1]`` (each ``(N, *shape)``); then the single-cycle
    derangement ``permutation`` ``(N,)`` (``None`` for ``N < 2``); then ``sampler_seeds`` ``(N,)`` (one generator
    per video for stochastic samplers, the same in every arm). All float32, canonical layout.

    ``eps`` comes first, so the ``eps`` of ``n`` videos are the first ``n`` of the ``eps`` of any ``m > n`` videos
    (same ``seed`` and ``shape``) wherever one video's element count is a multiple of 16 (torch's CPU normal
    sampler fills blocks of 16; the embedded models' latents qualify): decompositions of different sizes, or on
    two models of the same latent shape, share their first videos' noise.
    """
    gen = torch.Generator().manual_seed(require_seed(seed))
    full = (int(num_videos), *[int(s) for s in shape])
    eps = torch.randn(full, generator=gen)
    eta, fresh = [], []
    for _ in range(1, int(num_iters)):
        eta.append(torch.randn(full, generator=gen))
        fresh.append(torch.randn(full, generator=gen))
    perm = single_cycle_derangement(num_videos, gen) if num_videos >= 2 else None
    seeds = torch.randint(0, 2**62, (int(num_videos),), generator=gen).tolist()
    return dict(eps=eps, eta=eta, fresh=fresh, permutation=perm, sampler_seeds=seeds)


def min_videos_for_bootstrap(num_bootstrap: int = 2000) -> int:
    """Fewest videos whose distinct bootstrap resamples (``C(2n - 1, n)``) outnumber ``num_bootstrap``.

    Below that the percentile interval is made of repeated resamples (n = 7 has only 1716 distinct ones); 8 for
    the default 2000.
    """
    n = 2
    while math.comb(2 * n - 1, n) < int(num_bootstrap):
        n += 1
    return n


def paired_bootstrap(values: np.ndarray, num_bootstrap: int = 2000, seed: int = 0) -> np.ndarray:
    """Resampled means of per-video values, the same videos for every row: ``(num_bootstrap, *values.shape[:-1])``.

    ``values`` is ``(..., video)``; each resample draws ``video`` indices with replacement (numpy
    ``default_rng(seed)``) and averages every row over them, so paired differences keep their pairing.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1]
    rng = np.random.default_rng(int(seed))
    idx = rng.integers(0, n, size=(int(num_bootstrap), n))
    counts = np.zeros((int(num_bootstrap), n))
    np.add.at(counts, (np.arange(int(num_bootstrap))[:, None], idx), 1.0)
    return np.einsum("bn,...n->b...", counts / n, values)


def bootstrap_interval(
    values: np.ndarray, confidence: float = 0.99, num_bootstrap: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over videos of each row of ``values`` ``(..., video)`` with a paired percentile bootstrap interval.

    Every row is resampled with the same video indices (:func:`paired_bootstrap`), so rows that are paired
    differences (e.g. ``arm - plain`` of the same videos) keep their pairing. Returns ``(mean, low, high)``,
    each of shape ``values.shape[:-1]`` (floats for 1-D input). ``values`` must be finite (NaN/inf are refused,
    as :func:`two_sample_interval` refuses them).

    Examples
    --------
    >>> m, lo, hi = bootstrap_interval(np.arange(20.0), confidence=0.95)
    >>> float(m), bool(lo < m < hi)
    (9.5, True)
    """
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1), e.g. 0.99")
    num_bootstrap = require_int("num_bootstrap", num_bootstrap, why=" (bootstrap resamples of the videos)")
    seed = require_seed(seed)
    values = np.asarray(values, dtype=np.float64)
    if values.shape[-1] < min_videos_for_bootstrap(num_bootstrap):
        raise ValueError(f"{values.shape[-1]} videos are too few for {num_bootstrap} bootstrap resamples; need at "
                         f"least {min_videos_for_bootstrap(num_bootstrap)}")
    if not np.isfinite(values).all():
        raise ValueError("values holds non-finite values; drop the NaN/inf entries (e.g. passes an arm did not run) "
                         "before taking the interval")
    boot = paired_bootstrap(values, num_bootstrap, seed)
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    mean = values.mean(-1)
    if values.ndim == 1:
        return float(mean), float(lo), float(hi)
    return mean, lo, hi


def two_sample_interval(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.99, num_bootstrap: int = 2000, seed: int = 0, *,
    ratio_db: bool = False,
) -> tuple[float, float, float]:
    """Difference of the means of two *independent* samples with a percentile bootstrap interval.

    .. math::  \\Delta = \\bar a - \\bar b, \\qquad \\text{or with ratio\\_db:}\\quad
               \\Delta = 10 \\log_{10}\\left(\\bar a / \\bar b\\right)\\ \\mathrm{dB}

    ``a`` ``(n,)`` and ``b`` ``(m,)`` are resampled independently of each other (each with replacement,
    ``num_bootstrap`` times, numpy ``default_rng(seed)``), so the interval holds where the two sets share no
    pairing: e.g. band powers of FreeInit's initial latents against those of the training ``z_T`` of other,
    held-out videos. For paired values (the same videos in two arms) use :func:`bootstrap_interval` of their
    difference instead, which is narrower when the pairing holds. Returns ``(delta, low, high)`` (floats).

    Examples
    --------
    >>> d, lo, hi = two_sample_interval(np.full(10, 2.0), np.full(12, 1.0), ratio_db=True)
    >>> round(d, 2), round(lo, 2), round(hi, 2)
    (3.01, 3.01, 3.01)
    """
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1), e.g. 0.99")
    num_bootstrap = require_int("num_bootstrap", num_bootstrap, why=" (bootstrap resamples of each set)")
    seed = require_seed(seed)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    need = min_videos_for_bootstrap(num_bootstrap)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 1:
            raise ValueError(f"{name} has shape {x.shape}; pass one value per video, shape (n,) (e.g. a band's power "
                             "per video: .isel(band=0).values)")
        if x.size < need:
            raise ValueError(f"{name} holds {x.size} values, too few for {num_bootstrap} bootstrap resamples; need at "
                             f"least {need}")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} holds non-finite values; drop the NaN/inf entries (e.g. passes an arm did not "
                             "run) before comparing")
        if ratio_db and not (x > 0).all():
            raise ValueError(f"ratio_db=True compares powers, but {name} holds values <= 0; pass positive powers or "
                             "ratio_db=False for a difference of means")
    rng = np.random.default_rng(int(seed))
    ma = a[rng.integers(0, a.size, size=(int(num_bootstrap), a.size))].mean(1)
    mb = b[rng.integers(0, b.size, size=(int(num_bootstrap), b.size))].mean(1)
    if ratio_db:
        point, boot = 10 * np.log10(a.mean() / b.mean()), 10 * np.log10(ma / mb)
    else:
        point, boot = a.mean() - b.mean(), ma - mb
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(point), float(lo), float(hi)


# ----------------------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------------------
def _contrast(video: torch.Tensor) -> np.ndarray:
    return video.double().var(dim=(-2, -1), unbiased=False).mean(dim=(1, 2)).sqrt().numpy()


def _band_power(x: torch.Tensor, edges: np.ndarray) -> np.ndarray:
    return band_power(x.double(), edges=edges).mean(dim=1).numpy()  # (N, K), channel mean


_UNITS = {
    "consistency": ("first-frame cosine of mean-removed frames", "1"),
    "dynamics": ("RMS change between consecutive frames", "latent units"),
    "contrast": ("RMS spatial deviation within a frame", "latent units"),
    "band_power": ("mean power per FFT bin of the final clean latent, per radial band (channel mean)",
                   "x unit white noise"),
    "band_power_init": ("mean power per FFT bin of the last pass's initial latent, per radial band",
                        "x unit white noise"),
    "distance": ("RMS over bands of 10 log10(band power / mean reference band power)", "dB"),
}


# ----------------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------------
def _check_controls(controls) -> list[str]:
    if controls is None:
        return list(CONTROLS)
    if isinstance(controls, str):
        controls = [controls]
    controls = list(controls)
    valid = [a for a in CONTROL_ARMS if a not in ("plain", "freeinit")]
    unknown = [c for c in controls if c not in valid]
    if unknown:
        raise ValueError(
            f"unknown control(s) {unknown}; valid controls are {', '.join(valid)} (plain and freeinit always run; "
            "add your own with freeinit_lab.controls.register_control)"
        )
    if len(set(controls)) != len(controls):
        raise ValueError(f"controls {controls} name an arm twice")
    if not controls:
        raise ValueError(f"pass at least one control (or None for all: {', '.join(valid)})")
    return controls


def videos_needed(num_bootstrap: int = 2000, controls: Sequence[str] | None = None, num_iters: int = 2) -> int:
    """Fewest videos :func:`decompose_freeinit` accepts: ``min_videos_for_bootstrap(num_bootstrap)``, and at least
    ``num_iters`` where the ``shuffled_low`` control runs (its single-cycle derangement chains ``num_iters - 1``
    shuffled passes without a video meeting its own noise)."""
    need = min_videos_for_bootstrap(num_bootstrap)
    if "shuffled_low" in _check_controls(controls):
        need = max(need, int(num_iters))
    return need


class _Stop(Exception):
    pass


def _check_control_iters(control_iters, controls: Sequence[str], num_iters: int) -> dict[str, int]:
    """``control_iters`` as ``{chained control: passes}`` with ``2 <= passes <= num_iters``, or an error naming the fix."""
    if control_iters is None:
        return {}
    if not isinstance(control_iters, Mapping):
        raise TypeError(f"control_iters must map a chained control's name to its passes, e.g. {{'legacy_ideal': 2}}; "
                        f"got {type(control_iters).__name__}")
    chained = [c for c in controls if CONTROL_ARMS[c].chained]
    out = {}
    for name, k in control_iters.items():
        if name not in controls or not CONTROL_ARMS[name].chained:
            raise ValueError(
                f"control_iters names {name!r}, which is not a chained control of this call; the chained controls "
                f"here are {chained or 'none'} (add it to controls=, or drop it from control_iters: one-pass arms "
                "and FreeInit itself always run their usual passes)")
        out[name] = require_int(f"control_iters[{name!r}]", k, low=2, high=num_iters,
                                why=" (passes counting the shared plain pass: at least one iteration, at most "
                                    "FreeInit's num_iters)")
    return out


def _batch_kwargs(params, call_kwargs: dict, n: int) -> dict:
    """Arguments that make the pipeline sample ``n`` videos of one prompt (or ``n`` unconditional ones).

    Text pipelines get the prompt repeated ``n`` times (AnimateDiff ignores ``num_videos_per_prompt``), prompt
    embeddings of batch 1 repeated likewise; unconditional ones ``batch_size=n``.
    """
    prompt = call_kwargs.get("prompt")
    if isinstance(prompt, (list, tuple)):
        raise ValueError(
            "pass a single prompt string: every video of the decomposition uses the same prompt, and the "
            "decomposition repeats it once per video"
        )
    out: dict[str, Any] = {}
    if isinstance(prompt, str):
        out["prompt"] = [prompt] * n
        neg = call_kwargs.get("negative_prompt")
        if isinstance(neg, str):
            out["negative_prompt"] = [neg] * n
    for key in ("prompt_embeds", "negative_prompt_embeds"):
        emb = call_kwargs.get(key)
        if isinstance(emb, torch.Tensor):
            if emb.shape[0] != 1:
                raise ValueError(f"{key} must hold one prompt (batch 1); the decomposition repeats it per video")
            out[key] = emb.expand(n, *emb.shape[1:])
    if not out and "batch_size" in params:
        out["batch_size"] = n
    return out


def _latent_shape(pipe, layout, call_kwargs: dict, batch_kwargs) -> tuple[int, ...]:
    """Canonical ``(C, F, H, W)`` of one video, read from ``prepare_latents`` before any denoising step."""
    record: dict[str, Any] = {}
    if not callable(getattr(pipe, "prepare_latents", None)):
        shape = getattr(pipe, "sample_shape", None)
        if shape is None:
            raise TypeError(f"{type(pipe).__name__} has no prepare_latents or sample_shape to read the latent shape from")
        return tuple(int(s) for s in shape)

    def make_wrapper(original):
        def prepare_latents(*args, **kwargs):
            record["shape"] = tuple(_first_tensor(original(*args, **kwargs)).shape)
            raise _Stop

        return prepare_latents

    kwargs = dict(call_kwargs, **batch_kwargs(1), output_type="latent", generator=torch.Generator().manual_seed(0))
    with patch_attribute(pipe, "prepare_latents", make_wrapper):
        try:
            pipe(**kwargs)
        except _Stop:
            pass
    if "shape" not in record:
        raise RuntimeError(f"{type(pipe).__name__} did not call prepare_latents; cannot read its latent shape")
    check_channel_axis(pipe, layout, record["shape"], "decompose_freeinit")
    return layout.canonical_shape(record["shape"])[1:]


# ----------------------------------------------------------------------------------------------------------------
# the experiment
# ----------------------------------------------------------------------------------------------------------------
def decompose_freeinit(
    pipe: Any,
    num_videos: int = 16,
    seed: int = 0,
    num_iters: int = 2,
    method: str = "gaussian",
    d_s: float = 0.25,
    d_t: float = 0.25,
    controls: Sequence[str] | None = None,
    reference: torch.Tensor | None = None,
    *,
    order: float = 4.0,
    num_bands: int = 6,
    chunk_size: int = 32,
    num_bootstrap: int = 2000,
    confidence: float = 0.95,
    progress: bool = True,
    settings: FreeInitSettings | Mapping[str, Any] | None = None,
    oracle: bool = False,
    amplitude_reference: torch.Tensor | None = None,
    keep_latents: bool = False,
    return_latents: bool = False,
    control_iters: Mapping[str, int] | None = None,
    **call_kwargs: Any,
) -> xr.Dataset:
    """Run plain sampling, FreeInit and control arms on the same noises and measure what each explains.

    Parameters
    ----------
    pipe
        Any pipeline :func:`freeinit_lab.freeinit` accepts (``latents=``, ``output_type="latent"``, a registered
        layout): the embedded default, the analytic model, diffusers video pipelines.
    num_videos
        Paired videos per arm; at least :func:`min_videos_for_bootstrap` ``(num_bootstrap)`` (8 for 2000) and at
        least ``num_iters`` (the derangement of ``shuffled_low``).
    seed
        Seeds every draw (:func:`decomposition_noises`) and the bootstrap.
    num_iters
        Sampling passes of FreeInit and the chained arms, counting the shared plain pass (2 = one FreeInit
        iteration, the paper's biggest step).
    method, d_s, d_t, order
        FreeInit's low-pass filter (:func:`freeinit_lab.spectral.lowpass_filter`); ``legacy_ideal`` uses the ideal
        filter with the reference codes' threshold at the same ``d_s``, ``d_t``.
    controls
        Names from :data:`freeinit_lab.controls.CONTROLS` (``None``: all of them).
    reference
        Optional ``(M, C, F, H, W)`` clean latents of the training data (canonical layout, the pipeline's latent
        size). Adds ``distance`` and, unless ``amplitude_reference`` is given, sets the ``amplitude_matched``
        target; without either the target is the band power of the plain arm's own outputs (the model's
        distribution standing in for the data).
    num_bands
        Radial bands (:func:`freeinit_lab.spectral.default_band_edges`).
    chunk_size
        Videos per pipeline call (arms of one pass are batched together).
    num_bootstrap, confidence
        Paired percentile bootstrap over videos.
    progress
        tqdm bar over sampled videos.
    settings
        FreeInit's settings as one :class:`~freeinit_lab.core.reinit.FreeInitSettings` (or a dict of its fields)
        instead of ``num_iters``, ``method``, ``d_s``, ``d_t``, ``order``; passing both raises, and so does an
        object whose other fields (``mix``, ``renoise``, ``fast_sampling``, ``legacy_ideal_threshold``) are not
        their defaults (this study does not apply them).
    oracle
        Add the arm ``oracle``: one pass from the training marginal ``z_T = a_T x_0 + b_T ε`` with ``x_0`` the
        first ``num_videos`` videos of ``reference`` (required, at least ``num_videos`` of them) and each video's
        own ``ε``, so it differs from ``plain`` only by the signal ``a_T x_0`` (a perfect initialisation; not a
        control, so it has an ``effect`` but no ``explained``).
    amplitude_reference
        Optional ``(M >= 2, C, F, H, W)`` clean latents of the training data (canonical layout) that
        ``amplitude_matched``'s target is fitted on: ``T_k = a_T² P_k + b_T²`` with ``P_k`` their mean power per bin
        in band ``k`` around their mean colour (:func:`freeinit_lab.controls.amplitude_target`). Pass videos held
        out from ``reference`` when the arms are judged against ``reference``: fitted on ``reference`` itself, the
        target is tuned in-sample to the videos it is then compared with. Default: ``reference`` (else the plain
        arm's outputs). The source is recorded in ``amplitude_target.attrs["source"]``.
    keep_latents
        Also return ``pass_latent``: every arm's clean latent after every pass (float32; memory ``arms × passes ×
        num_videos`` latents).
    return_latents
        Also return every arm's final clean latents as ``latents`` (arm, video, channel, frame, height, width),
        e.g. for :func:`freeinit_lab.analysis.fidelity.judge_against_data`.
    control_iters
        Passes (counting the shared plain pass) of chained controls that stop before ``num_iters``, e.g.
        ``{"legacy_ideal": 2}``: one iteration, where a claim needs no later pass; each saves
        ``(num_iters - k) × num_videos`` sampled videos. Such an arm reports its own last pass ``k - 1`` (its
        metrics, ``effect`` and ``band_power_init``; ``pass_*`` are NaN after it), and its ``explained`` share is
        measured against FreeInit after the same ``k`` passes,
        :math:`\\overline{m_c^{(k-1)} - m_\\mathrm{plain}} / \\overline{m_\\mathrm{freeinit}^{(k-1)} - m_\\mathrm{plain}}`
        (the ``explained_pass`` coordinate says which pass each share compares; ``effect`` stays each arm's own
        reported pass minus ``plain``).
    **call_kwargs
        Passed to every pipeline call (``prompt``, ``num_inference_steps``, ``num_frames``, ``guidance_scale``,
        …); leave out ``num_inference_steps`` to use the pipeline's own default. ``latents`` (optional) are the
        initial noises ``ε`` ``(num_videos, ...)`` in the pipeline's layout instead of seeded ones.

    Returns
    -------
    xarray.Dataset
        ``consistency``, ``dynamics``, ``contrast`` (arm, video), ``band_power``, ``band_power_init``
        (arm, video, band), ``distance`` (arm, video; with ``reference``); ``explained``, ``explained_low``,
        ``explained_high`` (control, metric); ``effect``, ``effect_low``, ``effect_high`` (arm, metric);
        ``amplitude_target`` (band), ``permutation`` (video); ``pass_consistency``, ``pass_dynamics`` (arm, pass,
        video): the metric after every pass ``0 .. num_iters - 1`` (pass 0 of the chained arms is the shared plain
        pass; NaN where an arm has no output: ``plain`` after pass 0, one-pass arms before the last pass);
        ``pass_latent`` (arm, pass, video, channel, frame, height, width) with ``keep_latents``; coords
        ``passes`` (sampling passes per video) along ``arm``; units, settings and the bootstrap's description in
        attrs.

    Raises
    ------
    ValueError, TypeError
        Before any sampling: unknown controls (the message lists the valid ones), a ``control_iters`` entry that is
        not a chained control of this call or whose passes are not an integer in ``2 .. num_iters``,
        ``num_iters < 2``, too few videos (says how many are needed), initial ``latents``, a ``reference`` or an
        ``amplitude_reference`` whose shape differs from the pipeline's latents or that holds NaN/inf, a prompt
        list, or arguments the
        decomposition sets itself (``generator``,
        ``output_type``, ``num_videos_per_prompt``, ``batch_size``).
    """
    num_iters, method, d_s, d_t, order = settings_keywords(
        decompose_freeinit, settings, num_iters=num_iters, method=method, d_s=d_s, d_t=d_t, order=order
    )

    t_start = time.perf_counter()
    # ------------------------------------------------------------------ checks, before any sampling
    require_pipeline_instance(pipe, "decompose_freeinit")
    controls = _check_controls(controls)
    arms = ["plain", "freeinit", *controls]
    if oracle:
        if reference is None or torch.as_tensor(reference).shape[0] < int(num_videos):
            raise ValueError(
                "oracle=True needs reference= clean latents of the training data, at least num_videos of them: the "
                "oracle starts video i from a_T reference[i] + b_T eps[i]"
            )
        arms.append("oracle")
    num_iters = require_int("num_iters", num_iters, low=2,
                            why=": the decomposition needs at least one FreeInit iteration after the plain pass")
    stop = _check_control_iters(control_iters, controls, num_iters)
    num_bootstrap = require_int("num_bootstrap", num_bootstrap, low=100,
                                why=": fewer resamples are too few for a percentile interval (use >= 1000)")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1), e.g. 0.95")
    need = videos_needed(num_bootstrap, controls, num_iters)
    if isinstance(num_videos, bool) or not isinstance(num_videos, (int, np.integer)) or num_videos < need:
        raise ValueError(
            f"num_videos={num_videos!r} is too few: a paired bootstrap with {num_bootstrap} resamples needs at "
            f"least {min_videos_for_bootstrap(num_bootstrap)} videos"
            + (f" and shuffled_low with num_iters={num_iters} at least {num_iters}" if "shuffled_low" in arms else "")
            + f"; pass num_videos >= {need} (32-64 for intervals narrow enough to read)"
        )
    num_videos = int(num_videos)
    require_int("chunk_size", chunk_size, why=" (videos per pipeline call)")
    num_bands = require_int("num_bands", num_bands, why=" (radial frequency bands of band_power)")
    check_filter(method, d_s, d_t, order)  # validates the filter with a message naming the fix
    bad = [k for k in _RESERVED if k in call_kwargs]
    if bad:
        raise TypeError(
            f"decompose_freeinit sets {bad} itself (one generator per video from seed, latent output, the batch); "
            "drop them"
        )
    layout = get_layout(pipe)
    params = inspect.signature(pipe.__call__).parameters
    missing = [p for p in ("latents", "output_type") if p not in params]
    if missing:
        raise TypeError(f"{type(pipe).__name__}.__call__ has no {' / '.join(missing)} argument; the decomposition "
                        "hands every arm its initial latent with latents= and reads output_type='latent'")
    if getattr(pipe, "free_init_enabled", False):
        raise ValueError("diffusers' own FreeInit is enabled on this pipeline; call pipe.disable_free_init() first")
    user_latents = call_kwargs.pop("latents", None)

    def batch_kwargs(n: int) -> dict:
        return _batch_kwargs(params, call_kwargs, n)

    batch_kwargs(1)  # rejects a prompt list or prompt embeddings of several prompts
    shape = _latent_shape(pipe, layout, call_kwargs, batch_kwargs)
    require_frames("decompose_freeinit", shape)
    full = (num_videos, *shape)
    if user_latents is not None:
        if not isinstance(user_latents, torch.Tensor):
            raise TypeError(f"latents must be a torch.Tensor, got {type(user_latents).__name__}")
        got = layout.canonical_shape(user_latents.shape) if user_latents.dim() == 5 else tuple(user_latents.shape)
        if tuple(got) != full:
            raise ValueError(
                f"latents (canonical shape {tuple(got)}) cannot be shared by the arms: {type(pipe).__name__} samples "
                f"latents of canonical shape {full} (num_videos, channel, frame, height, width) for these arguments"
            )
    if reference is not None:
        reference = torch.as_tensor(reference)
        if reference.dim() != 5 or tuple(reference.shape[1:]) != tuple(shape) or reference.shape[0] < 2:
            raise ValueError(
                f"reference has shape {tuple(reference.shape)}; expected (M >= 2, {', '.join(map(str, shape))}): "
                "clean latents of the pipeline's latent size in (batch, channel, frame, height, width) order"
            )
        _check_video(reference, "reference")  # NaN/inf: refused now, not after the plain pass
    if amplitude_reference is not None:
        amplitude_reference = torch.as_tensor(amplitude_reference)
        if (amplitude_reference.dim() != 5 or tuple(amplitude_reference.shape[1:]) != tuple(shape)
                or amplitude_reference.shape[0] < 2):
            raise ValueError(
                f"amplitude_reference has shape {tuple(amplitude_reference.shape)}; expected (M >= 2, "
                f"{', '.join(map(str, shape))}): held-out clean latents of the training data, the pipeline's latent "
                "size, in (batch, channel, frame, height, width) order"
            )
        _check_video(amplitude_reference, "amplitude_reference")
    schedule = get_schedule(layout.get_scheduler(pipe))
    a_T, b_T = (float(v) for v in schedule.coefficients(schedule.terminal_timestep))
    if not schedule.has_terminal_signal:
        warnings.warn(
            f"{schedule.scheduler_class or schedule.family}'s training z_T carries no signal (a_T = {a_T:.3g}): there "
            "is no gap for FreeInit to close, so its 'mechanism' cannot be told from the controls",
            FreeInitNoGapWarning, stacklevel=2,
        )

    # ------------------------------------------------------------------ draws
    noises = decomposition_noises(num_videos, shape, seed, num_iters)
    eps = noises["eps"]
    if user_latents is not None:
        eps = layout.to_canonical(user_latents).detach().to("cpu", torch.float32).clone()
    perm = noises["permutation"]
    seeds = noises["sampler_seeds"]
    edges = _require_nonempty_bands(full, None, num_bands, who="decompose_freeinit")
    masks = {name: arm_lowpass(CONTROL_ARMS[name], full, method, d_s, d_t, order) for name in arms if name != "oracle"}

    denoiser = layout.get_denoisers(pipe)[0]
    device = getattr(pipe, "_execution_device", None) or next(denoiser.parameters()).device
    dtype = next(denoiser.parameters()).dtype
    def arm_passes(a: str) -> int:
        return 1 if a == "oracle" else CONTROL_ARMS[a].num_passes(stop.get(a, num_iters))

    total = num_videos * sum(1 if a in ("plain", "oracle") else arm_passes(a) - (
        1 if CONTROL_ARMS[a].chained else 0) for a in arms)
    pbar = None
    if progress:
        from tqdm.auto import tqdm

        pbar = tqdm(total=total, desc="decompose_freeinit (videos sampled)", leave=False)

    def sample(latents_c: torch.Tensor, video_idx: torch.Tensor, pass_index: int) -> torch.Tensor:
        outs = []
        for start in range(0, latents_c.shape[0], int(chunk_size)):
            chunk = latents_c[start : start + int(chunk_size)]
            vids = video_idx[start : start + int(chunk_size)].tolist()
            gens = [torch.Generator().manual_seed((seeds[v] + 7919 * pass_index) % 2**63) for v in vids]
            kwargs = dict(call_kwargs, **batch_kwargs(chunk.shape[0]))
            kwargs.update(latents=layout.from_canonical(chunk).to(device=device, dtype=dtype), generator=gens,
                          output_type="latent")
            if "return_dict" in params:
                kwargs["return_dict"] = False
            out = pipe(**kwargs)
            out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "frames", out)
            out_c = layout.to_canonical(out).detach().to("cpu", torch.float32)
            if tuple(out_c.shape) != tuple(chunk.shape):
                raise ValueError(
                    f"{type(pipe).__name__} returned latents of canonical shape {tuple(out_c.shape)} for inputs "
                    f"{tuple(chunk.shape)}: the arms cannot share noise with a pipeline that changes the latent shape"
                )
            outs.append(out_c.clone())
            if pbar is not None:
                pbar.update(chunk.shape[0])
        return torch.cat(outs)

    # ------------------------------------------------------------------ passes
    all_videos = torch.arange(num_videos)
    initial: dict[str, torch.Tensor] = {}
    final: dict[str, torch.Tensor] = {}
    by_pass: dict[str, dict[int, torch.Tensor]] = {a: {} for a in arms}  # every arm's output after every pass
    try:
        clean0 = sample(eps, all_videos, 0)
        initial["plain"], final["plain"] = eps, clean0
        by_pass["plain"][0] = clean0
        if amplitude_reference is not None:
            target_source, src = "amplitude_reference", amplitude_reference
        elif reference is not None:
            target_source, src = "reference", reference
        else:
            target_source, src = "plain arm's outputs", clean0
        target = amplitude_target(src, a_T, b_T, edges)
        chain = {a: clean0 for a in arms if a != "oracle" and CONTROL_ARMS[a].chained}
        for a in chain:
            by_pass[a][0] = clean0
        for i in range(1, num_iters):
            last = i == num_iters - 1
            eta, fresh = noises["eta"][i - 1], noises["fresh"][i - 1]
            todo: dict[str, torch.Tensor] = {}
            for a in arms:
                if a == "oracle":
                    if last:
                        todo[a] = a_T * reference[:num_videos].float() + b_T * eps
                    continue
                arm = CONTROL_ARMS[a]
                if arm.chained and i < arm_passes(a):
                    todo[a] = reinit_arm(arm, clean=chain[a], eps=eps, eta=eta, fresh=fresh, a_T=a_T, b_T=b_T,
                                         lowpass=masks[a], permutation=perm)
                elif last and arm.signal == "none":
                    # z_T = b_T·noise mixed with η by the arm's own mix (mask_only: FreeInit's, mask_only_latent)
                    todo[a] = reinit_arm(arm, clean=None, eps=eps, eta=eta, fresh=fresh, a_T=a_T, b_T=b_T,
                                         lowpass=masks[a])
                elif last and arm.amplitude_matched:
                    todo[a] = amplitude_matched_latent(eps, target, edges)
            names = list(todo)
            outs = sample(torch.cat([todo[a] for a in names]), all_videos.repeat(len(names)), i)
            for j, a in enumerate(names):
                out = outs[j * num_videos : (j + 1) * num_videos]
                by_pass[a][i] = out
                if a in chain:
                    chain[a] = out
                if last or (a in chain and i == arm_passes(a) - 1):  # the arm's own last pass
                    initial[a], final[a] = todo[a], out
    finally:
        if pbar is not None:
            pbar.close()

    # ------------------------------------------------------------------ metrics
    def measures(x: torch.Tensor) -> dict[str, np.ndarray]:
        return dict(consistency=_consistency(x), dynamics=_dynamics(x), contrast=_contrast(x),
                    band_power=_band_power(x, edges))

    per = {a: dict(measures(final[a]), band_power_init=_band_power(initial[a], edges)) for a in arms}
    # the pass each control's share compares with FreeInit at: its own last pass (one-pass arms: the last pass)
    share_pass = {c: (arm_passes(c) - 1 if CONTROL_ARMS[c].chained else num_iters - 1) for c in controls}
    fi_at = {k: measures(by_pass["freeinit"][k]) for k in set(share_pass.values()) if k != num_iters - 1}
    fi_at[num_iters - 1] = per["freeinit"]
    data_vars: dict[str, Any] = {}
    for name in ("consistency", "dynamics", "contrast"):
        long, units = _UNITS[name]
        data_vars[name] = (("arm", "video"), np.stack([per[a][name] for a in arms]), dict(long_name=long, units=units))
    for name in ("band_power", "band_power_init"):
        long, units = _UNITS[name]
        data_vars[name] = (("arm", "video", "band"), np.stack([per[a][name] for a in arms]),
                           dict(long_name=long, units=units))
    # rows: every arm's reported output, then FreeInit at each control's share pass (the shares' denominators)
    rows = [per[a] for a in arms] + [fi_at[share_pass[c]] for c in controls]
    metric_values = {m: np.stack([r[m] for r in rows]) for m in ("consistency", "dynamics", "contrast")}
    for k in range(len(edges) - 1):
        metric_values[f"band_power_{k}"] = np.stack([r["band_power"][:, k] for r in rows])
    if reference is not None:
        ref_p = _band_power(reference, edges).mean(0)
        dist = np.stack([np.sqrt(np.mean((10 * np.log10(r["band_power"] / ref_p)) ** 2, axis=1)) for r in rows])
        long, units = _UNITS["distance"]
        data_vars["distance"] = (("arm", "video"), dist[: len(arms)], dict(long_name=long, units=units))
        metric_values["distance"] = dist
        data_vars["reference_band_power"] = ("band", ref_p, dict(long_name="mean band power of the reference",
                                                                 units="x unit white noise"))
        data_vars["reference_consistency"] = ("reference_video", _consistency(reference.float()))
        data_vars["reference_dynamics"] = ("reference_video", _dynamics(reference.float()))
        data_vars["reference_contrast"] = ("reference_video", _contrast(reference.float()))
    # every pass: NaN where an arm has no output
    pass_values = {name: np.full((len(arms), num_iters, num_videos), np.nan) for name in ("consistency", "dynamics")}
    for ai, a in enumerate(arms):
        for i, out in by_pass[a].items():
            pass_values["consistency"][ai, i] = _consistency(out)
            pass_values["dynamics"][ai, i] = _dynamics(out)
    for name, vals in pass_values.items():
        long, units = _UNITS[name]
        data_vars[f"pass_{name}"] = (("arm", "pass", "video"), vals,
                                     dict(long_name=f"{long}, after every pass (NaN: no output)", units=units))
    if keep_latents:
        lat = np.full((len(arms), num_iters, *full), np.nan, dtype=np.float32)
        for ai, a in enumerate(arms):
            for i, out in by_pass[a].items():
                lat[ai, i] = out.numpy()
        data_vars["pass_latent"] = (("arm", "pass", "video", "channel", "frame", "height", "width"), lat,
                                    dict(long_name="clean latent after every pass (NaN: no output)",
                                         units="latent units"))
    if return_latents:
        data_vars["latents"] = (("arm", "video", "channel", "frame", "height", "width"),
                                torch.stack([final[a] for a in arms]).numpy(),
                                dict(long_name="final clean latent (output_type='latent', canonical layout)"))
    metrics = list(metric_values)
    values = np.stack([metric_values[m] for m in metrics])  # (metric, arm + control, video)

    # paired bootstrap: differences to plain, one set of resampled videos for every arm and metric
    diffs_all = values - values[:, :1]  # (metric, arm + control, video)
    boot_all = paired_bootstrap(diffs_all, num_bootstrap, seed)  # (B, metric, arm + control)
    n_arms = len(arms)
    diffs, boot = diffs_all[:, :n_arms], boot_all[:, :, :n_arms]
    lo_q, hi_q = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    effect = diffs.mean(-1)  # (metric, arm)
    ctrl_idx = [arms.index(c) for c in controls]
    fi_effect, fi_boot = diffs_all[:, n_arms:].mean(-1), boot_all[:, :, n_arms:]  # FreeInit at each share pass
    with np.errstate(divide="ignore", invalid="ignore"):
        explained = effect[:, ctrl_idx] / fi_effect
        boot_expl = boot[:, :, ctrl_idx] / fi_boot
    expl_lo, expl_hi = np.nanpercentile(boot_expl, [lo_q, hi_q], axis=0) if np.isfinite(boot_expl).any() else (
        np.full_like(explained, np.nan), np.full_like(explained, np.nan))
    eff_lo, eff_hi = np.percentile(boot, [lo_q, hi_q], axis=0)
    share = dict(long_name="share of FreeInit's effect reproduced: mean(control - plain) / mean(freeinit - plain)",
                 units="1")
    data_vars.update(
        explained=(("control", "metric"), explained.T, share),
        explained_low=(("control", "metric"), expl_lo.T, dict(long_name=f"{confidence:.0%} paired bootstrap low",
                                                              units="1")),
        explained_high=(("control", "metric"), expl_hi.T, dict(long_name=f"{confidence:.0%} paired bootstrap high",
                                                                units="1")),
        effect=(("arm", "metric"), effect.T, dict(long_name="mean over videos of arm - plain", units="metric units")),
        effect_low=(("arm", "metric"), eff_lo.T, dict(long_name=f"{confidence:.0%} paired bootstrap low")),
        effect_high=(("arm", "metric"), eff_hi.T, dict(long_name=f"{confidence:.0%} paired bootstrap high")),
        amplitude_target=("band", target, dict(
            long_name="band power of the training z_T marginal around its mean (amplitude_matched's target)",
            units="x unit white noise",
            source=target_source)),
        permutation=("video", perm.numpy() if perm is not None else np.arange(num_videos),
                     dict(long_name="video whose low band shuffled_low keeps (single-cycle derangement)")),
    )
    coords = {
        "arm": arms,
        "passes": ("arm", np.array([arm_passes(a) for a in arms]),
                   {"long_name": "sampling passes per video (the plain pass counted once per arm)"}),
        "description": ("arm", [_ORACLE_DESCRIPTION if a == "oracle" else CONTROL_ARMS[a].description for a in arms]),
        "pass": np.arange(num_iters),
        "video": np.arange(num_videos),
        **band_coords(edges),
        "control": controls,
        "explained_pass": ("control", np.array([share_pass[c] for c in controls], dtype=int),
                           {"long_name": "pass of FreeInit each control's share is measured against"}),
        "metric": metrics,
    }
    if reference is not None:
        coords["reference_video"] = np.arange(reference.shape[0])
    simple = {k: v for k, v in call_kwargs.items() if isinstance(v, (int, float, str, bool))}
    attrs = dict(
        pipeline_class=type(pipe).__name__,
        scheduler_class=type(layout.get_scheduler(pipe)).__name__,
        call_kwargs=json.dumps(simple, sort_keys=True),
        latent_shape=",".join(map(str, shape)),
        seed=int(seed), num_iters=num_iters, control_iters=json.dumps(stop, sort_keys=True), method=method,
        d_s=float(d_s), d_t=float(d_t), order=float(order),
        alpha_T=a_T, sigma_T=b_T, num_videos=num_videos,
        bootstrap=(f"paired percentile bootstrap over videos: {num_bootstrap} resamples of the video indices with "
                   f"replacement (numpy default_rng(seed)), the same for every arm and metric; "
                   f"{confidence:.0%} interval from the {lo_q:g} and {hi_q:g} percentiles"),
        num_bootstrap=num_bootstrap, confidence=float(confidence),
        convention=("metrics on the final clean latent (output_type='latent', canonical batch, channel, frame, "
                    "height, width; unclipped). Band power: ortho-normalised 3-D FFT, unit white noise = 1 per bin, "
                    "mean over the bins of each radial band and over channels, not mean-removed"),
        wall_seconds=time.perf_counter() - t_start,
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# ----------------------------------------------------------------------------------------------------------------
# reading it
# ----------------------------------------------------------------------------------------------------------------
def decomposition_table(ds: xr.Dataset, metrics: Sequence[str] | None = None, *, digits: int = 2):
    """``explained`` as a table of ``"share [low, high]"`` strings: controls × metrics (pandas.DataFrame)."""
    import pandas as pd

    metrics = list(ds.metric.values) if metrics is None else list(metrics)
    rows = {}
    for c in ds.control.values.tolist():
        rows[c] = {
            m: f"{float(ds.explained.sel(control=c, metric=m)):.{digits}f} "
               f"[{float(ds.explained_low.sel(control=c, metric=m)):.{digits}f}, "
               f"{float(ds.explained_high.sel(control=c, metric=m)):.{digits}f}]"
            for m in metrics
        }
    return pd.DataFrame(rows).T[metrics]


# the figure moved to freeinit_lab.viz.figures, reachable here for one release
__getattr__ = moved_attributes(__name__, "freeinit_lab.viz.figures", ("decomposition_figure",))
