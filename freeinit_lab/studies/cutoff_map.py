"""Where FreeInit helps: the paired consistency gain of FreeInit over plain sampling on a ``(d_s, d_t)`` grid.

For every cut-off pair ``(d_s, d_t)`` of a grid, :func:`measure_cutoff_map` runs FreeInit (``num_iters`` passes,
filter ``method``) from the same ``N`` seeded initial noises as plain sampling and records, per video ``v``,

.. math::  \\Delta_v(d_s, d_t) = c(\\text{FreeInit}_v(d_s, d_t)) - c(\\text{plain}_v)

with ``c`` the temporal consistency :func:`map_consistency` (consecutive-frame cosine of colour-centred pixels,
:func:`freeinit_lab.metrics.frame_cosine_similarity`) of the ``output_type="latent"`` sample decoded to pixels
(``pipe.normalizer``, when the pipeline works in a normalised model space) and clipped to ``[-1, 1]``. The map is the mean gain ``mean_v Δ_v`` with its standard error ``std_v Δ_v / sqrt(N)``
(paired: both samples of a video start from the same noise, so the seed-to-seed spread cancels).

The work is shared across the grid: the plain samples are computed once; without ``fast_sampling`` FreeInit's
first pass *is* plain sampling, so it is reused; every later pass stacks all grid points' reinitialised latents
into batched pipeline calls. Video ``v`` draws all its random numbers from ``torch.Generator().manual_seed(seeds[v])``
in diffusers' order (initial noise, then one ``eta`` per later pass), and every grid point gets the same draws
(common random numbers, so neighbouring cells differ by the filter only). Each cell is therefore exactly
``freeinit(pipe, generator=[torch.Generator().manual_seed(s) for s in seeds], batch_size=N, ...)`` — the tests
and ``notebooks/04_cutoff_explorer`` check it — and any subset of the seeds reproduces its videos' numbers.

With ``controls=("mask_only",)`` every cell also samples FreeInit's mix *without* the clean signal,
``z'_T = IFFT3D(H·FFT3D(b_T ε) + (1 - H)·FFT3D(η))`` (:data:`freeinit_lab.controls.CONTROL_ARMS`), from the same
``ε`` and the same last-pass ``η``: what the soft mask's change of the initial latent's power alone does. Then
``FreeInit − mask_only`` per video is the part of the gain that needs the re-diffused clean signal.

``python scripts/precompute_cutoff_map.py`` computes the map of the embedded default model with the sweep engine
(study ``cutoff_map``, one ``(d_s, d_t)`` cell per sweep cell, :func:`cutoff_map_from_sweep`) and writes
``data/cutoff_map.nc`` (:data:`DEFAULT_CUTOFF_MAP_PATH`), which the cutoff explorer
(:class:`freeinit_lab.widgets.CutoffExplorer`) shows as a heat map; with ``--first-seed 3 --out
data/cutoff_map_replication.nc`` the same sweep on 12 other videos (:data:`DEFAULT_REPLICATION_MAP_PATH`), on which
notebook 04 checks every claim of the map again.

Examples
--------
>>> from freeinit_lab import load_analytic_pipeline
>>> from freeinit_lab.studies.cutoff_map import measure_cutoff_map
>>> cmap = measure_cutoff_map(load_analytic_pipeline(), d_s=[0.25, 0.5], d_t=[0.25], num_videos=2,
...                           num_inference_steps=3, progress=False)
>>> cmap.gain.dims, cmap.gain.shape
(('d_s', 'd_t'), (2, 1))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from freeinit_lab._compat import moved_attributes
from freeinit_lab.analysis import metrics
from freeinit_lab.core.reinit import FreeInitSettings, draw_reinit_noise, reinitialize
from freeinit_lab.core.schedules import get_schedule
from freeinit_lab.embedded.paths import DATA_DIR
from freeinit_lab.hooks.layouts import get_layout
from freeinit_lab.hooks.outputs import read_pipeline_output
from freeinit_lab.probes.io import load_record, save_record
from freeinit_lab._checks import require_frames, require_int, require_seed

__all__ = [
    "DEFAULT_CUTOFF_MAP_PATH",
    "DEFAULT_REPLICATION_MAP_PATH",
    "DEFAULT_CUTOFFS",
    "measure_cutoff_map",
    "save_cutoff_map",
    "load_cutoff_map",
    "model_fingerprint",
    "nearest_cell",
    "map_consistency",
    "cutoff_map_from_sweep",
    "cutoff_map_contrasts",
    "MAP_CONTROLS",
]

#: where ``scripts/precompute_cutoff_map.py`` writes the embedded default's map and the explorer looks for it
DEFAULT_CUTOFF_MAP_PATH = DATA_DIR / "cutoff_map.nc"
#: the same sweep on other videos (sweep seeds 3 .. 5), which notebook 04 checks every claim of the map on again:
#: ``python scripts/precompute_cutoff_map.py --first-seed 3 --out data/cutoff_map_replication.nc --overwrite``
DEFAULT_REPLICATION_MAP_PATH = DATA_DIR / "cutoff_map_replication.nc"

#: default grid for both ``d_s`` and ``d_t`` (the paper's 0.25 included; all reachable by the explorer's sliders)
DEFAULT_CUTOFFS = (0.1, 0.25, 0.5, 0.8)

#: controls a map can sample per cell besides FreeInit (see :mod:`freeinit_lab.controls`)
MAP_CONTROLS = ("mask_only",)

_METRIC = "consecutive-frame cosine similarity of colour-centred pixels (freeinit_lab.metrics.frame_cosine_similarity)"


def model_fingerprint(pipe: Any) -> str:
    """Short SHA-256 of the denoiser's parameters and buffers: tells whether a stored map belongs to these weights.

    Returns the first 16 hex digits of the hash over every tensor of the pipeline's denoiser module(s)
    (:meth:`freeinit_lab.layouts.LatentLayout.get_denoisers`), in state-dict order.
    """

    h = hashlib.sha256()
    for module in get_layout(pipe).get_denoisers(pipe):
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                     if tensor.numel() else b"")
    return h.hexdigest()[:16]


def map_consistency(pipe: Any, latents: torch.Tensor) -> np.ndarray:
    """The map's temporal consistency of ``output_type="latent"`` samples, one number per video.

    Decodes a normalised model space to pixels (``pipe.normalizer.decode``, as ``pipe.decode_latents`` does), clips
    to ``[-1, 1]`` and returns :func:`freeinit_lab.metrics.frame_cosine_similarity` (consecutive frames,
    colour-centred pixels): 1 = static, 0 = unrelated consecutive frames, negative = consecutive frames
    anti-correlated (a flicker of period 2 frames). float64 ``(batch,)``.
    """
    return metrics.frame_cosine_similarity(metrics.display_values(latents, pipe)).double().numpy()


def _require_deterministic_sampler(pipe: Any, num_inference_steps: int, who: str) -> None:
    """Refuse a pipeline whose sampler draws random numbers while sampling, after a probe of one video.

    The map shares one plain pass (and, without ``fast_sampling``, FreeInit's first pass) across its cells and
    samples without generators, which only a deterministic sampler allows. The probe samples one video for at most
    two steps with a generator and checks whether the generator was drawn from (DDIM with ``eta > 0``, DDPM and
    ancestral or SDE samplers draw at every step before the last).
    """
    probe = torch.Generator().manual_seed(0)
    before = probe.get_state()
    latents = torch.randn((1, *pipe.sample_shape), generator=torch.Generator().manual_seed(0))
    pipe(latents=latents, num_inference_steps=min(int(num_inference_steps), 2), output_type="latent",
         generator=[probe])
    if not torch.equal(probe.get_state(), before):
        scheduler = get_layout(pipe).get_scheduler(pipe)
        eta = getattr(pipe, "default_eta", None)
        raise ValueError(
            f"{who} needs a deterministic sampler: {type(pipe).__name__} with {type(scheduler).__name__}"
            + (f" (default_eta={eta})" if eta else "") + " draws random numbers while sampling, so the map's shared "
            "plain pass and its cells would depend on the global RNG, not on the seeds. Use a deterministic "
            "sampler: pipe.default_eta = 0.0 (DDIM eta = 0), or UniPC / DPM-Solver++"
        )


def plain_samples(pipe: Any, seeds: Sequence[int], num_inference_steps: int, *,
                  batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial noises and plain samples of the map's videos: video ``v`` from ``torch.Generator().manual_seed(seeds[v])``.

    Returns ``(eps, samples)``, both ``(N, *pipe.sample_shape)`` float32: ``eps`` exactly as the pipeline's
    ``prepare_latents`` draws it, ``samples`` the ``output_type="latent"`` outputs from it.

    Raises
    ------
    ValueError
        For a pipeline whose sampler draws random numbers while sampling (e.g. DDIM with ``eta > 0``), after a
        probe of one video: the samples would depend on the global RNG, not on ``seeds``.
    """
    from diffusers.utils.torch_utils import randn_tensor

    # checked before the probe: int() would read 0.5 as the seed 0, torch -1 as 2**64 - 1
    seeds = [require_seed(s, f"seeds[{v}]") for v, s in enumerate(seeds)]
    _require_deterministic_sampler(pipe, num_inference_steps, "plain_samples")
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    eps = randn_tensor((len(gens), *pipe.sample_shape), generator=gens, dtype=torch.float32)
    outs = [read_pipeline_output(pipe(latents=eps[s:s + batch_size].clone(), num_inference_steps=int(num_inference_steps),
                                      output_type="latent")).detach().to(torch.float32)
            for s in range(0, eps.shape[0], batch_size)]
    return eps, torch.cat(outs)


def _cutoffs(values: Sequence[float] | float, name: str) -> np.ndarray:
    # float() would read True as the cut-off 1.0 and "0.25" as 0.25: a flag or a string is no cut-off
    given = np.atleast_1d(np.asarray(values, dtype=object)).ravel()
    if any(isinstance(v, (bool, np.bool_, str, bytes)) for v in given):
        raise ValueError(f"{name}={values!r} must be numbers in (0, 1] (normalised frequency, Nyquist = 1), not "
                         f"flags or strings; e.g. {name}=[0.25, 0.5]")
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of cut-offs in (0, 1]; got {values!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0) or np.any(arr > 1):
        raise ValueError(f"{name}={arr.tolist()}: every cut-off must be in (0, 1] (normalised frequency, Nyquist = 1)")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name}={arr.tolist()} has repeated values; each grid value once")
    return np.sort(arr)  # the map's axes ascend whatever order they were given in (its lookups and figures need it)


def check_map_controls(controls: Sequence[str] | str, num_iters: int) -> tuple[str, ...]:
    """The map's ``controls`` as a tuple (one name is one control), each of :data:`MAP_CONTROLS` at most once, and
    only with ``num_iters >= 2`` (a control replaces FreeInit's last pass); else ``ValueError`` naming the fix."""
    controls = (controls,) if isinstance(controls, str) else tuple(controls)
    unknown = [c for c in controls if c not in MAP_CONTROLS]
    if unknown or len(set(controls)) != len(controls):
        raise ValueError(f"controls={list(controls)}: a map samples each of {list(MAP_CONTROLS)} at most once")
    if controls and num_iters < 2:
        raise ValueError("controls need num_iters >= 2: a control replaces FreeInit's last pass")
    return controls


def measure_cutoff_map(
    pipe: Any = None,
    *,
    d_s: Sequence[float] = DEFAULT_CUTOFFS,
    d_t: Sequence[float] = DEFAULT_CUTOFFS,
    method: str = "gaussian",
    order: float = 4,
    num_iters: int = 3,
    num_inference_steps: int | None = None,
    fast_sampling: bool = False,
    renoise: str = "same",
    num_videos: int = 16,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    controls: Sequence[str] = (),
    plain: torch.Tensor | None = None,
) -> xr.Dataset:
    """Mean paired consistency gain of FreeInit over plain sampling on a ``(d_s, d_t)`` grid.

    Parameters
    ----------
    pipe
        A video pipeline in ``(batch, channel, frame, height, width)`` layout with a ``sample_shape`` whose
        ``output_type="latent"`` output is in ``[-1, 1]`` (the embedded default and the analytic reference), with a
        deterministic sampler (the embedded default's stored one, or DDIM with ``eta = 0``). Default:
        :func:`freeinit_lab.load_default_pipeline`.
    d_s, d_t
        Grid values of the spatial and temporal cut-offs, each in (0, 1], no repeats.
    method, order, num_iters, fast_sampling, renoise
        FreeInit's settings, as :func:`freeinit_lab.freeinit` takes them (``num_iters`` counts the plain first pass;
        ``num_iters=1`` is plain sampling, so its gain is exactly 0).
    num_inference_steps
        Steps of plain sampling and of every FreeInit pass (with ``fast_sampling``: of the last pass). Default: the
        pipeline's own sampler (``pipe.default_num_inference_steps``, the model folder's ``sampler.json``).
    num_videos
        ``N`` videos, seeded ``seed, seed + 1, ..., seed + N - 1`` (>= 2, for a standard error).
    seed
        First seed.
    batch_size
        Videos per pipeline call (memory knob; the numbers do not depend on it beyond float rounding).
    progress
        Show a tqdm bar over the pipeline calls.
    controls
        Control arms sampled per cell besides FreeInit, from :data:`MAP_CONTROLS` (``"mask_only"``: the last
        pass's mix without the clean signal, same ``ε`` and ``η``; one extra sampled video per cell and video).
    plain
        The plain samples of exactly these seeds at these steps (``plain_samples(pipe, seeds, steps)[1]``), when
        computed before: they are reused instead of sampled again (a sweep of one cell per call shares them).

    Returns
    -------
    xarray.Dataset
        dims ``(d_s, d_t)`` and ``video``:

        - ``gain`` ``(d_s, d_t)``: mean paired gain in consistency, FreeInit − plain;
        - ``gain_se`` ``(d_s, d_t)``: its standard error (sample std of the per-video gains / sqrt N);
        - ``gain_per_video`` ``(d_s, d_t, video)``, ``freeinit`` ``(d_s, d_t, video)``, ``baseline`` ``(video)``:
          the per-video numbers behind them (consistencies, :func:`map_consistency`);
        - with ``controls``: ``control_consistency`` ``(control, d_s, d_t, video)``, the consistency of each control's
          sample;
        - coord ``seed`` along ``video``; attrs: the settings, the metric, ``pipeline``, ``model``
          (:func:`model_fingerprint`), ``latent_shape`` (``(channel, frame, height, width)`` of one video: the
          grid the cut-offs act on), ``scheduler_class``, ``seeds``, ``num_pipeline_videos`` (sampled videos) and
          ``seconds``, as plain values NetCDF round-trips (:func:`save_cutoff_map`).

    Raises
    ------
    ValueError
        Before any sampling, for cut-offs outside (0, 1] or repeated, ``num_videos < 2``, ``num_iters < 1``,
        ``batch_size < 1``, a ``seed`` that is not an integer in ``[0, 2**63 - num_videos]``, an unknown filter,
        ``renoise`` or a pipeline not in canonical layout; after a probe of one video (at most two steps), for a
        sampler that draws random numbers while sampling (e.g. DDIM with ``eta > 0``), whose map would depend on the global RNG rather than on the seeds.
    """
    from tqdm.auto import tqdm

    # ------------------------------------------------------------------ validation, before any model runs
    ds_values, dt_values = _cutoffs(d_s, "d_s"), _cutoffs(d_t, "d_t")
    controls = check_map_controls(controls, num_iters)
    if pipe is None:  # loading samples nothing; the step count may come from the pipeline's stored sampler
        from freeinit_lab.embedded.pipelines import load_default_pipeline

        pipe = load_default_pipeline()
    if num_inference_steps is None:
        num_inference_steps = getattr(pipe, "default_num_inference_steps", None)
        if num_inference_steps is None:
            raise ValueError(f"{type(pipe).__name__} stores no default sampler: pass num_inference_steps")
    for name, value, low in (("num_videos", num_videos, 2), ("num_iters", num_iters, 1),
                             ("num_inference_steps", num_inference_steps, 1), ("batch_size", batch_size, 1)):
        require_int(name, value, low=low,
                    why=" (paired standard errors need at least 2 videos; use 16-32)" if name == "num_videos" else "")
    # video v is seeded seed + v (a negative or fractional seed would silently be another one), kept as int64
    require_int("seed", seed, low=0, high=2**63 - int(num_videos),
                why=" (the first generator seed: the videos' seeds seed .. seed + num_videos - 1 are int64)")
    # validates method, order and renoise once, with the settings' own messages
    settings = FreeInitSettings(num_iters=int(num_iters), method=method, d_s=float(ds_values[0]),
                                d_t=float(dt_values[0]), order=order, fast_sampling=fast_sampling, renoise=renoise)
    layout = get_layout(pipe)
    if not layout.is_canonical or not hasattr(pipe, "sample_shape"):
        raise ValueError(
            f"{type(pipe).__name__} is not a (batch, channel, frame, height, width) pipeline with a sample_shape; "
            "the cutoff map scores output latents as pixels. Use the default or analytic pipeline."
        )

    require_frames("measure_cutoff_map", pipe.sample_shape)
    num_videos, num_iters, steps = int(num_videos), int(num_iters), int(num_inference_steps)
    _require_deterministic_sampler(pipe, steps, "measure_cutoff_map")
    seeds = np.arange(int(seed), int(seed) + num_videos, dtype=np.int64)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    shape = (num_videos, *pipe.sample_shape)
    steps_per_pass = settings.steps_per_pass(steps)
    schedule = get_schedule(layout.get_scheduler(pipe))
    grid = [(float(a), float(b)) for a in ds_values for b in dt_values]
    num_cells = len(grid)

    def chunks(n: int) -> int:
        return math.ceil(n / batch_size)

    separate_first = steps_per_pass[0] != steps
    if plain is not None and tuple(plain.shape) != shape:
        raise ValueError(f"plain has shape {tuple(plain.shape)}; the map's videos are {shape}")
    arms = 1 + len(controls)  # FreeInit and the controls share the last pass's pipeline calls
    total_calls = (chunks(num_videos) * ((plain is None) + separate_first) + (num_iters - 2) * chunks(num_cells * num_videos)
                   + chunks(arms * num_cells * num_videos) * (num_iters > 1))
    bar = tqdm(total=total_calls, desc="cutoff map (pipeline calls)", disable=not progress, leave=False)
    sampled = 0

    def sample(latents: torch.Tensor, n_steps: int, label: str) -> torch.Tensor:
        nonlocal sampled
        outs = []
        bar.set_postfix_str(label)
        for s in range(0, latents.shape[0], batch_size):
            out = pipe(latents=latents[s:s + batch_size].clone(), num_inference_steps=n_steps, output_type="latent")
            outs.append(read_pipeline_output(out).detach().to(torch.float32))
            bar.update()
        sampled += latents.shape[0]
        return torch.cat(outs)

    t0 = time.perf_counter()
    try:
        # the initial noise each seeded generator draws first, exactly as the pipeline's prepare_latents would
        from diffusers.utils.torch_utils import randn_tensor

        eps = randn_tensor(shape, generator=gens, dtype=torch.float32)
        if plain is not None:
            baseline = plain.detach().to(torch.float32)
        else:
            baseline = sample(eps, steps, "plain sampling")
        clean = sample(eps, steps_per_pass[0], "FreeInit pass 0") if separate_first else baseline
        clean = clean.unsqueeze(0).expand(num_cells, *shape)  # pass 0 is the same for every cell
        ctrl = None
        for i in range(1, num_iters):
            eta, noise = draw_reinit_noise(shape, gens, renoise=settings.renoise, initial_noise=eps)
            last = i == num_iters - 1
            reinit = torch.empty(num_cells * (1 + len(controls) * last), *shape)
            for g, (a, b) in enumerate(grid):
                cell = settings.replace(d_s=a, d_t=b)
                mask = cell.mask(shape, dtype=torch.float32)
                reinit[g] = reinitialize(clean[g], noise, eta, schedule=schedule, settings=cell, lowpass=mask,
                                         parts=False).latent
                if last and controls:  # mask_only: the same mix with the clean signal left out
                    reinit[num_cells + g] = reinitialize(torch.zeros_like(clean[g]), noise, eta, schedule=schedule,
                                                         settings=cell, lowpass=mask, parts=False).latent
            label = f"FreeInit pass {i}" + (" and controls" if last and controls else "")
            out = sample(reinit.reshape(-1, *shape[1:]), steps_per_pass[i], label).reshape(-1, *shape)
            clean = out[:num_cells]
            if last and controls:
                ctrl = out[num_cells:].reshape(len(controls), num_cells, *shape)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0

    def score(x: torch.Tensor) -> np.ndarray:
        return map_consistency(pipe, x)

    base_c = score(baseline)
    if num_iters == 1:
        fi_c = np.broadcast_to(base_c, (num_cells, num_videos)).copy()
    else:
        fi_c = score(clean.reshape(num_cells * num_videos, *shape[1:])).reshape(num_cells, num_videos)
    fi_c = fi_c.reshape(ds_values.size, dt_values.size, num_videos)
    ctrl_c = None
    if controls:
        ctrl_c = score(ctrl.reshape(-1, *shape[1:])).reshape(len(controls), ds_values.size, dt_values.size, num_videos)
    ds = _map_dataset(ds_values, dt_values, seeds, base_c, fi_c, ctrl_c, controls)
    ds.attrs.update(_map_attrs(pipe, method=method, order=order, num_iters=num_iters, steps=steps,
                               steps_per_pass=steps_per_pass, fast_sampling=fast_sampling, renoise=renoise,
                               seeds=seeds, sampled=sampled, seconds=seconds))
    return ds


def _map_dataset(ds_values: np.ndarray, dt_values: np.ndarray, seeds: np.ndarray, base_c: np.ndarray,
                 fi_c: np.ndarray, ctrl_c: np.ndarray | None, controls: Sequence[str]) -> xr.Dataset:
    """The map's dataset from per-video consistencies: ``base_c`` ``(video,)``, ``fi_c`` ``(d_s, d_t, video)``,
    ``ctrl_c`` ``(control, d_s, d_t, video)`` or None."""
    num_videos = base_c.shape[0]
    gain_v = fi_c - base_c
    dims3 = ("d_s", "d_t", "video")
    extra: dict[str, Any] = {}
    if ctrl_c is not None:
        extra["control_consistency"] = (("control", *dims3), ctrl_c, {
            "long_name": "consistency of the control's sample (same noises as FreeInit's last pass)", "units": "1"})
    return xr.Dataset(
        {
            "gain": (("d_s", "d_t"), gain_v.mean(-1), {
                "long_name": "consistency gain of FreeInit over plain sampling (paired mean)", "units": "1"}),
            "gain_se": (("d_s", "d_t"), gain_v.std(-1, ddof=1) / math.sqrt(num_videos), {
                "long_name": "standard error of the paired consistency gain", "units": "1"}),
            "gain_per_video": (dims3, gain_v, {"long_name": "consistency gain per video (FreeInit - plain)",
                                               "units": "1"}),
            "freeinit": (dims3, fi_c, {"long_name": "consistency of the FreeInit sample", "units": "1"}),
            "baseline": (("video",), base_c, {"long_name": "consistency of the plain sample", "units": "1"}),
            **extra,
        },
        coords={
            "d_s": ("d_s", np.asarray(ds_values, dtype=np.float64),
                    {"long_name": "spatial cut-off d_s", "units": "normalised frequency"}),
            "d_t": ("d_t", np.asarray(dt_values, dtype=np.float64),
                    {"long_name": "temporal cut-off d_t", "units": "normalised frequency"}),
            "video": ("video", np.arange(num_videos)),
            "seed": ("video", np.asarray(seeds, dtype=np.int64), {"long_name": "torch.Generator seed of the video"}),
            **({"control": ("control", list(controls))} if ctrl_c is not None else {}),
        },
    )


def _map_attrs(pipe: Any, *, method: str, order: float, num_iters: int, steps: int, steps_per_pass: Sequence[int],
               fast_sampling: bool, renoise: str, seeds: np.ndarray, sampled: int, seconds: float) -> dict[str, Any]:
    scheduler = get_layout(pipe).get_scheduler(pipe)
    return dict(
        title="FreeInit consistency gain over plain sampling on a (d_s, d_t) grid",
        metric=_METRIC,
        method=str(method),
        order=float(order),
        num_iters=int(num_iters),
        num_inference_steps=int(steps),
        steps_per_pass=np.asarray(steps_per_pass, dtype=np.int64),
        fast_sampling=int(bool(fast_sampling)),
        renoise=str(renoise),
        num_videos=int(len(seeds)),
        seeds=np.asarray(seeds, dtype=np.int64),
        pipeline=type(pipe).__name__,
        latent_shape=np.asarray(pipe.sample_shape, dtype=np.int64),
        scheduler_class=type(scheduler).__name__,
        scheduler_config=json.dumps({k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")},
                                    default=str, sort_keys=True),
        model=model_fingerprint(pipe),
        num_pipeline_videos=int(sampled),
        seconds=round(float(seconds), 2),
    )


def cutoff_map_from_sweep(store: xr.Dataset, pipe: Any) -> xr.Dataset:
    """The map (as :func:`measure_cutoff_map` returns it) from a complete sweep of study ``cutoff_map``.

    ``store`` is the sweep's dataset (``freeinit_lab.sweep.run_sweep`` or ``xarray.open_zarr``) with grid keys
    exactly ``d_s`` and ``d_t``; ``pipe`` the pipeline it ran on (for the weights' fingerprint, latent grid and
    scheduler the map records). The sweep's seeds ``s`` and their ``videos_per_seed`` videos ``v`` become the map's
    videos with generator seeds ``s * videos_per_seed + v`` (:func:`freeinit_lab.sweep.video_seeds`), so the result
    equals one :func:`measure_cutoff_map` call on those seeds. The sweep's spec and its hash are kept in the attrs
    ``sweep_spec`` and ``sweep_spec_hash``.

    Raises
    ------
    ValueError
        For a store of another study or grid, with incomplete cells, or whose cells disagree on the plain samples.
    """
    from freeinit_lab.sweep.spec import video_seeds

    spec = json.loads(store.attrs.get("sweep_spec", "{}"))
    if spec.get("study") != "cutoff_map" or set(spec.get("grid", {})) != {"d_s", "d_t"}:
        raise ValueError(f"not a cutoff-map sweep: study {spec.get('study')!r}, grid keys "
                         f"{sorted(spec.get('grid', {}))} (need study cutoff_map with grid keys d_s and d_t)")
    if not bool(store["complete"].all()):
        missing = int((~store["complete"].astype(bool)).sum())
        raise ValueError(f"the sweep has {missing} incomplete cell(s); rerun it to complete them first")
    store = store.sortby(["d_s", "d_t"])  # axes ascending, as measure_cutoff_map's (a grid may list them in any order)
    settings = {**spec.get("sampler", {}), **spec.get("options", {})}
    per_seed = int(spec["videos_per_seed"])
    seeds = np.asarray([v for s in spec["seeds"] for v in video_seeds(int(s), per_seed)], dtype=np.int64)

    def flat(name: str, *lead: str) -> np.ndarray:
        v = store[name].transpose(*lead, "d_s", "d_t", "seed", "video").values.astype(np.float64)
        return v.reshape(*v.shape[:-2], v.shape[-2] * v.shape[-1])

    base_all = flat("baseline")
    if not np.allclose(base_all, base_all[:1, :1], rtol=0, atol=1e-9):
        raise ValueError("the sweep's cells disagree on the plain samples' consistency (mixed runs?); rerun it")
    fi_c = flat("freeinit")
    controls = [str(c) for c in store["control"].values] if "control" in store.dims else []
    ctrl_c = flat("control_consistency", "control") if controls else None
    ds = _map_dataset(np.asarray(store["d_s"].values, dtype=np.float64),
                      np.asarray(store["d_t"].values, dtype=np.float64), seeds, base_all[0, 0], fi_c, ctrl_c, controls)
    num_iters = int(settings.get("num_iters", 3))
    steps = int(settings.get("num_inference_steps") or pipe.default_num_inference_steps)
    fast = bool(settings.get("fast_sampling", False))
    fi_settings = FreeInitSettings(num_iters=num_iters, fast_sampling=fast)
    num_cells = ds.sizes["d_s"] * ds.sizes["d_t"]
    # one plain sample per video, shared by all cells; with fast_sampling every cell samples its own short pass 0
    sampled = seeds.size + num_cells * seeds.size * (num_iters - 1 + fast + len(controls))
    ds.attrs.update(_map_attrs(pipe, method=settings.get("method", "gaussian"), order=settings.get("order", 4),
                               num_iters=num_iters, steps=steps, steps_per_pass=fi_settings.steps_per_pass(steps),
                               fast_sampling=fast, renoise=settings.get("renoise", "same"), seeds=seeds,
                               sampled=sampled, seconds=float(np.nansum(store["cell_seconds"].values))))
    ds.attrs.update(sweep_spec=store.attrs["sweep_spec"], sweep_spec_hash=store.attrs["sweep_spec_hash"])
    return ds


def cutoff_map_contrasts(cmap: xr.Dataset, confidence: float = 0.99) -> xr.Dataset:
    """Paired per-cell contrasts of a map with Student-t intervals over its videos.

    For every cell, the per-video differences of consistency (:func:`map_consistency`)

    - ``freeinit - plain``: FreeInit's gain (the map's ``gain``);
    - with the ``mask_only`` control: ``mask_only - plain`` (what the soft mask's change of the initial latent's
      power does alone) and ``freeinit - mask_only`` (what the re-diffused clean signal adds on top of it);

    and the absolute consistencies ``plain``, ``freeinit`` (and ``mask_only``) as rows of their own, each with mean,
    standard error and the two-sided ``confidence`` t-interval (``n - 1`` degrees of freedom; paired rows share the
    videos, so the seed-to-seed spread cancels).

    Returns
    -------
    xarray.Dataset
        ``mean``, ``se``, ``low``, ``high`` over ``(contrast, d_s, d_t)``; attrs ``confidence`` and ``num_videos``.
    """
    from scipy import stats

    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1), e.g. 0.99")
    n = cmap.sizes["video"]
    if n < 2:
        raise ValueError("a t-interval needs at least 2 videos")
    fi = cmap["freeinit"].transpose("d_s", "d_t", "video")
    plain = cmap["baseline"].broadcast_like(fi).transpose("d_s", "d_t", "video")
    rows = {"freeinit - plain": fi - plain, "plain": plain, "freeinit": fi}
    if "control_consistency" in cmap and "mask_only" in cmap["control"].values:
        mask = cmap["control_consistency"].sel(control="mask_only", drop=True).transpose("d_s", "d_t", "video")
        rows.update({"mask_only - plain": mask - plain, "freeinit - mask_only": fi - mask, "mask_only": mask})
    values = xr.concat(list(rows.values()), dim=xr.Variable("contrast", list(rows)), coords="minimal",
                       compat="override")
    mean = values.mean("video")
    se = values.std("video", ddof=1) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + float(confidence) / 2, n - 1)) * se
    out = xr.Dataset({"mean": mean, "se": se, "low": mean - half, "high": mean + half})
    out.attrs.update(confidence=float(confidence), num_videos=int(n),
                     units="consistency (consecutive-frame cosine of colour-centred pixels), differences of it")
    return out


def save_cutoff_map(ds: xr.Dataset, path: str | os.PathLike = DEFAULT_CUTOFF_MAP_PATH, *,
                    overwrite: bool = False) -> Path:
    """Write a :func:`measure_cutoff_map` dataset to NetCDF (through :func:`freeinit_lab.io.save_record`).

    Refuses to replace an existing file unless ``overwrite``. Returns the path written.
    """

    missing = [v for v in ("gain", "gain_se") if v not in ds]
    if missing or set(ds["gain"].dims) != {"d_s", "d_t"}:
        raise ValueError(f"not a cutoff map (needs gain and gain_se with dims (d_s, d_t)); missing {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_record(ds, path, format="netcdf", overwrite=overwrite)
    return path


def load_cutoff_map(path: str | os.PathLike = DEFAULT_CUTOFF_MAP_PATH) -> xr.Dataset:
    """Read a map written by :func:`save_cutoff_map`.

    Raises
    ------
    FileNotFoundError
        With the command that computes it, when the file does not exist.
    ValueError
        When the file is not a cutoff map.
    """

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no cutoff map at {path}; compute it with `python scripts/precompute_cutoff_map.py` "
            f"(or freeinit_lab.cutoff_map.measure_cutoff_map + save_cutoff_map)"
        )
    ds = load_record(path, format="netcdf")
    if "gain" not in ds or "gain_se" not in ds or set(ds["gain"].dims) != {"d_s", "d_t"}:
        raise ValueError(f"{path} is not a cutoff map (needs gain and gain_se with dims (d_s, d_t))")
    return ds.transpose("d_s", "d_t", ...)


def nearest_cell(ds: xr.Dataset, d_s: float, d_t: float) -> dict[str, float]:
    """The grid cell of ``ds`` nearest to ``(d_s, d_t)`` (per axis): its ``d_s``, ``d_t``, ``gain``, ``gain_se``.

    A map whose axes are not in ascending order (built by hand, or by an older version) is read sorted."""
    cell = ds[["gain", "gain_se"]].sortby(["d_s", "d_t"]).sel(d_s=d_s, d_t=d_t, method="nearest")
    return {"d_s": float(cell.d_s), "d_t": float(cell.d_t), "gain": float(cell.gain), "gain_se": float(cell.gain_se)}


# figure functions that moved to freeinit_lab.viz.figures, reachable here for one release
__getattr__ = moved_attributes(__name__, "freeinit_lab.viz.figures", ("cutoff_map_marker", "cutoff_map_figure"))
