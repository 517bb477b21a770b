"""FreeInit refinement, pass by pass: the measurements behind ``notebooks/03_freeinit_refinement``.

:func:`refinement_study` samples ``N`` seeded initial noises on one pipeline and measures, all paired on the same
noises and the same high-frequency draws ``eta``:

* **per iteration** — FreeInit with ``num_iters`` passes (pass 0 = plain sampling), full sampling (every pass
  ``num_inference_steps`` sampler steps) and coarse-to-fine sampling (pass ``i`` runs
  ``int(N_steps / K * (i + 1))`` steps, :func:`freeinit_lab.freeinit.fast_sampling_steps`): the temporal
  consistency of every pass's clean latent and the denoiser evaluations it cost;
* **band SNR of the initial latent** of every pass (:meth:`FreeInitResult.band_snr`: signal part
  ``a_T · lowpass(z_0)`` vs the rest) next to the band SNR of the *training* ``z_T`` of clean reference videos
  (:func:`freeinit_lab.snr.band_snr` at the terminal timestep) — FreeInit's aim is to bring the first towards the
  second;
* **filters** — one FreeInit iteration (:func:`refine_once`) from the same plain samples with each low-pass filter
  (same ``d_s``, ``d_t``, same ``eta``);
* **initialisations** — plain sampling (baseline), the last FreeInit pass, an *oracle* initialisation drawn from
  the training marginal ``z_T = a_T x_0 + b_T eps`` of held-out clean videos ``x_0`` with the baseline's own
  noise ``eps`` (as in :func:`freeinit_lab.evidence.measure_evidence`), so the oracle differs from the baseline
  only by the signal ``a_T x_0`` and the comparison is paired, and the clean videos themselves.

Consistency is :func:`freeinit_lab.metrics.frame_cosine_similarity` (consecutive frames, colour-centred pixels;
samples clipped to ``[-1, 1]``) and :func:`freeinit_lab.metrics.temporal_flicker`, as in
:mod:`freeinit_lab.evidence`.

Examples
--------
>>> from freeinit_lab.embedded.pipelines import load_analytic_pipeline
>>> ds = refinement_study(load_analytic_pipeline(), num_videos=2, num_inference_steps=3, num_iters=2,
...                       filters=("gaussian", "ideal"))
>>> dict(ds.consistency.sizes)
{'sampling': 2, 'iteration': 2, 'video': 2}
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Callable, Mapping

import numpy as np
import torch
import xarray as xr

from freeinit_lab._compat import moved_attributes
from freeinit_lab.core.reinit import (
    FreeInitSettings,
    draw_reinit_noise,
    reinitialize,
    resolve_settings,
    settings_keywords,
)
from freeinit_lab.core.schedules import get_schedule
from freeinit_lab.core.spectral import _check_video, _require_nonempty_bands, check_filter
from freeinit_lab.engine.checks import resolve_num_inference_steps
from freeinit_lab.hooks.layouts import get_layout
from freeinit_lab.hooks.outputs import read_pipeline_output
from freeinit_lab._checks import require_frames, require_int, require_seed

__all__ = [
    "refine_once",
    "refinement_study",
    "cumulative_quality",
]


def _metrics(video: torch.Tensor, pipe: Any = None) -> dict[str, np.ndarray]:
    """Consistency and flicker of latent videos on display values: decoded by ``pipe.normalizer`` when the pipeline
    has one (the embedded default's unit-variance model space), then clipped to ``[-1, 1]``."""
    from freeinit_lab.analysis import metrics

    v = metrics.display_values(video, pipe)
    return {
        "consistency": metrics.frame_cosine_similarity(v).double().numpy(),
        "flicker": metrics.temporal_flicker(v).double().numpy(),
    }


def _sample(pipe: Any, latents: torch.Tensor, num_inference_steps: int, generator: Any = None) -> torch.Tensor:
    out = pipe(latents=latents.clone(), num_inference_steps=num_inference_steps, output_type="latent",
               generator=generator)
    return read_pipeline_output(out).detach().float()


#: the keyword defaults of refine_once (its filter defaults to gaussian)
_REFINE_DEFAULTS = dict(method="gaussian", d_s=0.25, d_t=0.25, order=4, legacy_ideal_threshold=False)


def refine_once(
    pipe: Any,
    clean: torch.Tensor,
    noise: torch.Tensor,
    *,
    method: str = "gaussian",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    num_inference_steps: int | None = None,
    generator: torch.Generator | None = None,
    legacy_ideal_threshold: bool = False,
    settings: FreeInitSettings | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One FreeInit iteration from a given clean sample: reinitialise, then sample again.

    ``z_T = a_T clean + b_T noise`` (``T`` the last training timestep, ``noise`` the first pass's initial noise as
    in ``renoise="same"``), ``z'_T = IFFT(FFT(z_T) H + FFT(eta) (1 - H))`` with ``eta`` drawn from ``generator``
    first, exactly as :func:`freeinit_lab.freeinit.freeinit` does in its pass 1 — so
    ``refine_once(pipe, pass0_clean, eps, generator=g)`` equals pass 1 of ``freeinit(pipe, num_iters=2,
    latents=eps, generator=g)`` for a deterministic sampler. Use it to compare filters from one shared pass 0.

    Parameters
    ----------
    pipe
        A pipeline in canonical ``(batch, channel, frame, height, width)`` layout (the embedded default or the
        analytic reference).
    clean, noise
        ``(batch, channel, frame, height, width)``: the previous pass's clean latent and the initial noise.
    method, d_s, d_t, order, legacy_ideal_threshold
        The low-pass filter (:func:`freeinit_lab.spectral.lowpass_filter`).
    num_inference_steps
        Steps of the new pass (default: the pipeline's stored sampler, ``pipe.default_num_inference_steps``, else 25).
    generator
        Draws ``eta``, then the new pass's own draws (a stochastic sampler, e.g. DDIM with ``eta > 0``), as
        :func:`freeinit_lab.freeinit` uses its generator.
    settings
        The filter (and ``mix``) as a :class:`~freeinit_lab.core.reinit.FreeInitSettings`, instead of the
        keywords; ``renoise`` must be ``"same"`` (the re-diffusion uses ``noise``).

    Returns
    -------
    (torch.Tensor, torch.Tensor, torch.Tensor)
        The new clean latent, the reinitialised initial latent ``z'_T``, and its signal part
        ``a_T · lowpass(clean)``, all float32 (the embedded pipelines sample in float32; float64 inputs are
        rounded to it first).
    """
    s = resolve_settings(settings, _REFINE_DEFAULTS, method=method, d_s=d_s, d_t=d_t, order=order,
                         legacy_ideal_threshold=legacy_ideal_threshold)
    if s.renoise != "same":
        raise ValueError(
            f"refine_once re-diffuses clean with the given noise (renoise='same'); settings asks for "
            f"renoise={s.renoise!r}. Pass fresh noise as noise= yourself (noise=torch.randn_like(clean)) with "
            "renoise='same', or run freeinit(pipe, settings=...)"
        )
    layout = get_layout(pipe)
    if not layout.is_canonical:
        raise ValueError(f"{type(pipe).__name__} is not in (batch, channel, frame, height, width) layout; "
                         "use freeinit_lab.freeinit for other layouts")
    schedule = get_schedule(layout.get_scheduler(pipe))
    clean = clean.float()
    eta, noise = draw_reinit_noise(clean.shape, generator, renoise="same", initial_noise=noise.float(),
                                   device=clean.device)
    init, signal, _ = reinitialize(clean, noise, eta, schedule=schedule, settings=s)
    # the pass samples with the same generator after eta, as freeinit's passes do (a stochastic sampler's draws)
    steps = resolve_num_inference_steps(pipe, num_inference_steps, fallback=25)
    return _sample(pipe, init, steps, generator), init, signal


def refinement_study(
    pipe: Any,
    *,
    num_videos: int = 16,
    seed: int = 0,
    num_inference_steps: int | None = None,
    num_iters: int = 5,
    method: str = "gaussian",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    filters: Sequence[str] = ("gaussian", "butterworth", "ideal", "box"),
    num_bands: int = 6,
    reference: torch.Tensor | Callable[[int, int], torch.Tensor] | None = None,
    progress: bool = False,
    settings: FreeInitSettings | Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """FreeInit pass by pass, coarse-to-fine vs full, filters, and baseline/FreeInit/oracle (module docstring).

    Parameters
    ----------
    pipe
        Canonical-layout pipeline with ``sample_shape`` whose ``output_type="latent"`` output is in ``[-1, 1]``.
    num_videos
        Videos, sampled as one batch per pipeline call.
    seed
        Every random draw derives from it: initial noises (shared by the oracle), the ``eta`` draws (the same
        generator seed for the full, coarse-to-fine and filter runs, so their first reinitialisation uses the same
        ``eta``; a stochastic sampler's own draws come from the same generators: the oracle makes the baseline's,
        and every filter row the full run's pass-1 draws) and the default reference videos.
    num_inference_steps, num_iters, method, d_s, d_t, order
        FreeInit settings of the per-iteration runs (``num_iters`` counts the plain first pass); the step count
        defaults to the pipeline's stored sampler (``pipe.default_num_inference_steps``), else 25.
    filters
        Low-pass filters compared after one FreeInit iteration from the shared plain samples (a single name: that
        filter alone).
    num_bands
        Bands of the SNR comparison (default edges of :func:`freeinit_lab.spectral.default_band_edges`).
    reference
        Clean videos ``(>= 2 N, C, F, H, W)`` in the pipeline's latent space, or a callable
        ``(n, seed) -> videos``; the first ``N`` are the "data" row and give the training ``z_T`` SNR, the next
        ``N`` the oracle's ``x_0``. Default: :func:`freeinit_lab.held_out_videos` (the model's own training
        distribution: the embedded default's data generator, an exact-score model's prior) with seed
        ``950_000_000 + seed`` (never used in training); other pipelines must pass it. Consistency and flicker
        are measured on display values (decoded by the pipeline's ``normalizer`` when it has one, clipped to
        ``[-1, 1]``); band SNRs in latent space.
    progress
        Print one line per stage with its wall time.
    settings
        FreeInit's settings as one :class:`~freeinit_lab.core.reinit.FreeInitSettings` (or a dict of its fields)
        instead of ``num_iters``, ``method``, ``d_s``, ``d_t``, ``order``; passing both raises, and so does an
        object whose other fields (``mix``, ``renoise``, ``fast_sampling``, ``legacy_ideal_threshold``) are not
        their defaults (this study does not apply them).

    Returns
    -------
    xarray.Dataset
        * ``consistency``, ``flicker`` — dims ``(sampling, iteration, video)``, ``sampling = ["full",
          "coarse-to-fine"]``;
        * ``denoiser_evals`` — ``(sampling, iteration)``, evaluations of each pass (cumulate for the cost);
        * ``clean_latent`` — ``(sampling, iteration, video, channel, frame, height, width)``;
        * ``band_snr`` — ``(iteration, band)`` dB, initial latent of each full-sampling pass (``-inf`` in pass 0);
        * ``training_snr`` — ``(band,)`` dB, training ``z_T`` of the reference videos at the terminal timestep;
        * ``filter_consistency``, ``filter_flicker`` — ``(filter, video)`` after one iteration;
          ``filter_band_snr`` — ``(filter, band)`` of those initial latents;
        * ``init_consistency``, ``init_flicker`` — ``(source, video)`` with ``source = ["baseline", "freeinit",
          "oracle", "data"]``;
        * attrs: settings, seeds, seconds per stage.
    """
    num_iters, method, d_s, d_t, order = settings_keywords(
        refinement_study, settings, num_iters=num_iters, method=method, d_s=d_s, d_t=d_t, order=order
    )

    from freeinit_lab.engine.loop import freeinit
    from freeinit_lab.core.snr import band_snr, inference_band_snr

    num_inference_steps = resolve_num_inference_steps(pipe, num_inference_steps, fallback=25)
    num_videos = require_int("num_videos", num_videos, low=2, why=": paired statistics need at least 2 videos")
    num_iters = require_int("num_iters", num_iters, low=2,
                            why=": need at least one FreeInit iteration after the plain pass")
    filters = (filters,) if isinstance(filters, str) else tuple(filters)  # one name is one filter, not its letters
    for m in filters:  # every filter compared after one iteration, checked before any sampling
        check_filter(m, d_s, d_t, order)
    if len(set(filters)) != len(filters):
        raise ValueError(f"filters={tuple(filters)!r} lists a filter twice; list each once (they label the result)")
    require_int("num_bands", num_bands)
    layout = get_layout(pipe)
    if not layout.is_canonical or not hasattr(pipe, "sample_shape"):
        raise ValueError(f"{type(pipe).__name__} is not a canonical-layout pipeline with sample_shape; use the "
                         "embedded default (load_default_pipeline) or the analytic reference")
    shape = (num_videos, *pipe.sample_shape)
    require_frames("refinement_study", shape)
    _require_nonempty_bands(shape, None, num_bands, who="refinement_study")
    gen = torch.Generator().manual_seed(require_seed(seed))
    noise = torch.randn(shape, generator=gen)
    torch.randn(shape, generator=gen)  # reserved draw (keeps eta_seed stable)
    eta_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    ref_seed = 10**8 + 1000 * int(seed) + 500
    if reference is None:
        from freeinit_lab.embedded.pipelines import held_out_videos

        try:
            ref = held_out_videos(pipe, 2 * num_videos, 950_000_000 + int(seed))
        except ValueError as err:
            raise ValueError(f"{err} (refinement_study(..., reference=videos or a callable (n, seed) -> videos))") from None
    elif callable(reference):
        ref = reference(2 * num_videos, ref_seed)
    else:
        ref = reference
    ref = torch.as_tensor(ref).float()
    if ref.ndim != 5 or tuple(ref.shape[1:]) != tuple(shape[1:]) or ref.shape[0] < 2 * num_videos:
        raise ValueError(f"reference has shape {tuple(ref.shape)}; expected (>= {2 * num_videos}, "
                         f"{', '.join(map(str, shape[1:]))}) clean videos in the pipeline's latent space")
    _check_video(ref, "reference")  # NaN/inf: refused now, not after the sampling that would start from it
    data, oracle_x0 = ref[:num_videos], ref[num_videos:2 * num_videos]

    seconds: dict[str, float] = {}
    settings = dict(method=method, d_s=d_s, d_t=d_t, order=order, num_inference_steps=num_inference_steps,
                    output_type="latent", progress=False)

    def stage(name: str, t0: float) -> None:
        seconds[name] = round(time.perf_counter() - t0, 2)
        if progress:
            print(f"refinement_study: {name} {seconds[name]:.1f} s")

    # ---------------------------------------------------------------- per iteration, full and coarse-to-fine
    runs = {}
    for sampling, fast in (("full", False), ("coarse-to-fine", True)):
        t0 = time.perf_counter()
        runs[sampling] = freeinit(pipe, num_iters=num_iters, fast_sampling=fast, latents=noise.clone(),
                                  generator=torch.Generator().manual_seed(eta_seed), **settings)
        stage(sampling, t0)
    full = runs["full"]
    per = {s: [_metrics(it.clean_latent, pipe) for it in r.iterations] for s, r in runs.items()}
    samplings = list(runs)

    # ---------------------------------------------------------------- oracle initialisation
    t0 = time.perf_counter()
    sched = layout.get_scheduler(pipe)
    sched.set_timesteps(num_inference_steps)
    t_first = int(sched.timesteps[0])
    schedule = get_schedule(sched)
    # the baseline's noise and, for a stochastic sampler, the baseline's sampler draws (pass 0 of the full run
    # samples with a fresh generator of eta_seed): the oracle differs from the baseline by the signal alone
    oracle_gen = torch.Generator().manual_seed(eta_seed)
    oracle = _sample(pipe, schedule.diffuse(oracle_x0, t_first, noise), num_inference_steps, oracle_gen)
    # oracle_gen has now made the draws of the full run's pass 0 (same shape and steps): its state is the one
    # FreeInit's first eta and pass 1 draw from (unchanged for a deterministic sampler, which draws nothing)
    after_pass0 = oracle_gen.get_state()
    stage("oracle", t0)

    # ---------------------------------------------------------------- filters, one iteration from shared pass 0
    t0 = time.perf_counter()
    pass0 = full.iterations[0].clean_latent
    eps = full.iterations[0].initial_latent
    filt_metrics, filt_snr = [], []
    for m in filters:
        if m == method:  # identical to pass 1 of the full run (same eta draw, same sampler draws, same filter)
            clean1, sig, init = full.iterations[1].clean_latent, full.iterations[1].signal, full.iterations[1].initial_latent
        else:
            clean1, init, sig = refine_once(pipe, pass0, eps, method=m, d_s=d_s, d_t=d_t, order=order,
                                            num_inference_steps=num_inference_steps,
                                            generator=torch.Generator().set_state(after_pass0))
        filt_metrics.append(_metrics(clean1, pipe))
        filt_snr.append(inference_band_snr(sig, init - sig, num_bands).values)
    stage("filters", t0)

    init_sources = {"baseline": full.iterations[0].clean_latent, "freeinit": full.iterations[-1].clean_latent,
                    "oracle": oracle, "data": data}
    init_m = {s: _metrics(v, pipe) for s, v in init_sources.items()}

    snr_iter = full.band_snr(num_bands)
    train_snr = band_snr(data, schedule, num_bands, timesteps=[schedule.terminal_timestep]).isel(timestep=0, drop=True)
    band_coords = {k: ("band", snr_iter[k].values) for k in ("band_lo", "band_hi", "num_bins") if k in snr_iter.coords}

    iters = np.arange(num_iters)
    ds = xr.Dataset(
        {
            "consistency": (("sampling", "iteration", "video"),
                            np.stack([np.stack([p["consistency"] for p in per[s]]) for s in samplings])),
            "flicker": (("sampling", "iteration", "video"),
                        np.stack([np.stack([p["flicker"] for p in per[s]]) for s in samplings])),
            "denoiser_evals": (("sampling", "iteration"),
                               np.array([[it.num_denoiser_evals for it in runs[s].iterations] for s in samplings])),
            "num_inference_steps": (("sampling", "iteration"),
                                    np.array([[it.num_inference_steps for it in runs[s].iterations] for s in samplings])),
            "clean_latent": (("sampling", "iteration", "video", "channel", "frame", "height", "width"),
                             np.stack([np.stack([it.clean_latent.numpy() for it in runs[s].iterations])
                                       for s in samplings]).astype(np.float32)),
            "band_snr": (("iteration", "band"), snr_iter.values),
            "training_snr": (("band",), train_snr.values),
            # np.array(...).reshape keeps a (0, n) array when no filter is compared (filters=())
            "filter_consistency": (("filter", "video"),
                                   np.array([f["consistency"] for f in filt_metrics]).reshape(-1, num_videos)),
            "filter_flicker": (("filter", "video"),
                               np.array([f["flicker"] for f in filt_metrics]).reshape(-1, num_videos)),
            "filter_band_snr": (("filter", "band"), np.array(filt_snr).reshape(-1, num_bands)),
            "init_consistency": (("source", "video"), np.stack([init_m[s]["consistency"] for s in init_sources])),
            "init_flicker": (("source", "video"), np.stack([init_m[s]["flicker"] for s in init_sources])),
        },
        coords={"sampling": samplings, "iteration": iters, "video": np.arange(num_videos),
                "band": np.arange(num_bands), "filter": list(filters), "source": list(init_sources), **band_coords},
    )
    long = {
        "consistency": ("consecutive-frame cosine similarity (colour-centred pixels)", "1"),
        "flicker": ("temporal flickering score (1 - mean |frame difference| / range)", "1"),
        "denoiser_evals": ("denoiser evaluations of the pass", "1"),
        "clean_latent": ("clean latent z_0 at the end of the pass", "pixels in [-1, 1]"),
        "band_snr": ("band SNR of the pass's initial latent (signal a_T·lowpass(z_0) vs the rest)", "dB"),
        "training_snr": ("band SNR of the training z_T of the reference videos", "dB"),
        "filter_consistency": ("consistency after one FreeInit iteration", "1"),
        "filter_flicker": ("flicker score after one FreeInit iteration", "1"),
        "filter_band_snr": ("band SNR of the reinitialised initial latent", "dB"),
        "init_consistency": ("consistency by initialisation", "1"),
        "init_flicker": ("flicker score by initialisation", "1"),
    }
    for name, (ln, units) in long.items():
        ds[name].attrs = {"long_name": ln, "units": units}
    ds.attrs.update(
        seed=int(seed), eta_seed=eta_seed, reference_seed=ref_seed, num_videos=int(num_videos),
        num_inference_steps=int(num_inference_steps), num_iters=int(num_iters), method=method, d_s=float(d_s),
        d_t=float(d_t), order=float(order), oracle_timestep=t_first, terminal_timestep=float(schedule.terminal_timestep),
        pipeline=type(pipe).__name__, seconds=str(seconds), snr_convention=str(snr_iter.attrs.get("convention", "")),
    )
    return ds


def cumulative_quality(ds: xr.Dataset, metric: str = "consistency") -> xr.Dataset:
    """Mean ``metric`` of each pass against the cumulative denoiser evaluations spent to reach it.

    Returns
    -------
    xarray.Dataset
        ``mean``, ``se`` and ``cumulative_evals`` with dims ``(sampling, iteration)``.
    """
    usable = [str(k) for k, v in ds.data_vars.items() if {"video", "iteration"} <= set(v.dims)]
    if metric not in usable:
        raise ValueError(f"metric={metric!r} is not a per-video, per-pass quantity of this study; use one of "
                         f"{usable}")
    m = ds[metric]
    n = m.sizes["video"]
    return xr.Dataset({
        "mean": m.mean("video"),
        "se": m.std("video", ddof=1) / np.sqrt(n),
        "cumulative_evals": ds["denoiser_evals"].cumsum("iteration"),
    })


# figure functions that moved to freeinit_lab.viz.figures, reachable here for one release
__getattr__ = moved_attributes(
    __name__, "freeinit_lab.viz.figures", ("iteration_figure", "filter_figure", "band_snr_iteration_figure")
)
