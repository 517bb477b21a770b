"""Where FreeInit helps: the paired consistency gain of FreeInit over plain sampling on a ``(d_s, d_t)`` grid.

For every cut-off pair ``(d_s, d_t)`` of a grid, :func:`measure_cutoff_map` runs FreeInit (``num_iters`` passes,
filter ``method``) from the same ``N`` seeded initial noises as plain sampling and records, per video ``v``,

.. math::  \\Delta_v(d_s, d_t) = c(\\text{FreeInit}_v(d_s, d_t)) - c(\\text{plain}_v)

with ``c`` the temporal consistency :func:`freeinit_lab.metrics.frame_cosine_similarity` (consecutive frames,
colour-centred pixels) of the ``output_type="latent"`` sample clipped to ``[-1, 1]`` (for the embedded default
these are pixels). The map is the mean gain ``mean_v Δ_v`` with its standard error ``std_v Δ_v / sqrt(N)``
(paired: both samples of a video start from the same noise, so the seed-to-seed spread cancels).

The work is shared across the grid: the plain samples are computed once; without ``fast_sampling`` FreeInit's
first pass *is* plain sampling, so it is reused; every later pass stacks all grid points' reinitialised latents
into batched pipeline calls. Video ``v`` draws all its random numbers from ``torch.Generator().manual_seed(seeds[v])``
in diffusers' order (initial noise, then one ``eta`` per later pass), and every grid point gets the same draws
(common random numbers, so neighbouring cells differ by the filter only). Each cell is therefore exactly
``freeinit(pipe, generator=[torch.Generator().manual_seed(s) for s in seeds], batch_size=N, ...)`` — the tests
and ``notebooks/04_cutoff_explorer`` check it — and any subset of the seeds reproduces its videos' numbers.

``python scripts/precompute_cutoff_map.py`` writes the map of the embedded default model to
``data/cutoff_map.nc`` (:data:`DEFAULT_CUTOFF_MAP_PATH`), which the cutoff explorer
(:class:`freeinit_lab.widgets.CutoffExplorer`) shows as a heat map.

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

__all__ = [
    "DEFAULT_CUTOFF_MAP_PATH",
    "DEFAULT_CUTOFFS",
    "measure_cutoff_map",
    "save_cutoff_map",
    "load_cutoff_map",
    "model_fingerprint",
    "nearest_cell",
]

#: where ``scripts/precompute_cutoff_map.py`` writes the embedded default's map and the explorer looks for it
DEFAULT_CUTOFF_MAP_PATH = DATA_DIR / "cutoff_map.nc"

#: default grid for both ``d_s`` and ``d_t`` (the paper's 0.25 included; all reachable by the explorer's sliders)
DEFAULT_CUTOFFS = (0.1, 0.25, 0.4, 0.6, 0.8)

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


def _cutoffs(values: Sequence[float] | float, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of cut-offs in (0, 1]; got {values!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0) or np.any(arr > 1):
        raise ValueError(f"{name}={arr.tolist()}: every cut-off must be in (0, 1] (normalised frequency, Nyquist = 1)")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name}={arr.tolist()} has repeated values; each grid value once")
    return arr


def measure_cutoff_map(
    pipe: Any = None,
    *,
    d_s: Sequence[float] = DEFAULT_CUTOFFS,
    d_t: Sequence[float] = DEFAULT_CUTOFFS,
    method: str = "gaussian",
    order: float = 4,
    num_iters: int = 3,
    num_inference_steps: int = 25,
    fast_sampling: bool = False,
    renoise: str = "same",
    num_videos: int = 16,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> xr.Dataset:
    """Mean paired consistency gain of FreeInit over plain sampling on a ``(d_s, d_t)`` grid.

    Parameters
    ----------
    pipe
        A video pipeline in ``(batch, channel, frame, height, width)`` layout with a ``sample_shape`` whose
        ``output_type="latent"`` output is in ``[-1, 1]`` (the embedded default and the analytic reference), with a
        deterministic sampler (DDIM with ``eta = 0``, the default). Default: :func:`freeinit_lab.load_default_pipeline`.
    d_s, d_t
        Grid values of the spatial and temporal cut-offs, each in (0, 1], no repeats.
    method, order, num_iters, fast_sampling, renoise
        FreeInit's settings, as :func:`freeinit_lab.freeinit` takes them (``num_iters`` counts the plain first pass;
        ``num_iters=1`` is plain sampling, so its gain is exactly 0).
    num_inference_steps
        Steps of plain sampling and of every FreeInit pass (with ``fast_sampling``: of the last pass).
    num_videos
        ``N`` videos, seeded ``seed, seed + 1, ..., seed + N - 1`` (>= 2, for a standard error).
    seed
        First seed.
    batch_size
        Videos per pipeline call (memory knob; the numbers do not depend on it beyond float rounding).
    progress
        Show a tqdm bar over the pipeline calls.

    Returns
    -------
    xarray.Dataset
        dims ``(d_s, d_t)`` and ``video``:

        - ``gain`` ``(d_s, d_t)``: mean paired gain in consistency, FreeInit − plain;
        - ``gain_se`` ``(d_s, d_t)``: its standard error (sample std of the per-video gains / sqrt N);
        - ``gain_per_video`` ``(d_s, d_t, video)``, ``freeinit`` ``(d_s, d_t, video)``, ``baseline`` ``(video)``:
          the per-video numbers behind them;
        - coord ``seed`` along ``video``; attrs: the settings, the metric, ``pipeline``, ``model``
          (:func:`model_fingerprint`), ``latent_shape`` (``(channel, frame, height, width)`` of one video: the
          grid the cut-offs act on), ``scheduler_class``, ``seeds``, ``num_pipeline_videos`` (sampled videos) and
          ``seconds``, as plain values NetCDF round-trips (:func:`save_cutoff_map`).

    Raises
    ------
    ValueError
        Before any sampling, for cut-offs outside (0, 1] or repeated, ``num_videos < 2``, ``num_iters < 1``,
        ``batch_size < 1``, an unknown filter, ``renoise`` or a pipeline not in canonical layout.
    """
    from diffusers.utils.torch_utils import randn_tensor
    from tqdm.auto import tqdm


    # ------------------------------------------------------------------ validation, before any model runs
    ds_values, dt_values = _cutoffs(d_s, "d_s"), _cutoffs(d_t, "d_t")
    for name, value, low in (("num_videos", num_videos, 2), ("num_iters", num_iters, 1),
                             ("num_inference_steps", num_inference_steps, 1), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            hint = " (paired standard errors need at least 2 videos; use 16-32)" if name == "num_videos" else ""
            raise ValueError(f"{name}={value!r} must be an integer >= {low}{hint}")
    # validates method, order and renoise once, with the settings' own messages
    settings = FreeInitSettings(num_iters=int(num_iters), method=method, d_s=float(ds_values[0]),
                                d_t=float(dt_values[0]), order=order, fast_sampling=fast_sampling, renoise=renoise)
    if pipe is None:
        from freeinit_lab.embedded.pipelines import load_default_pipeline

        pipe = load_default_pipeline()
    layout = get_layout(pipe)
    if not layout.is_canonical or not hasattr(pipe, "sample_shape"):
        raise ValueError(
            f"{type(pipe).__name__} is not a (batch, channel, frame, height, width) pipeline with a sample_shape; "
            "the cutoff map scores output latents as pixels. Use the default or analytic pipeline."
        )

    num_videos, num_iters, steps = int(num_videos), int(num_iters), int(num_inference_steps)
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
    total_calls = chunks(num_videos) * (1 + separate_first) + (num_iters - 1) * chunks(num_cells * num_videos)
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
        eps = randn_tensor(shape, generator=gens, dtype=torch.float32)
        baseline = sample(eps, steps, "plain sampling")
        clean = sample(eps, steps_per_pass[0], "FreeInit pass 0") if separate_first else baseline
        clean = clean.unsqueeze(0).expand(num_cells, *shape)  # pass 0 is the same for every cell
        for i in range(1, num_iters):
            eta, noise = draw_reinit_noise(shape, gens, renoise=settings.renoise, initial_noise=eps)
            reinit = torch.empty(num_cells, *shape)
            for g, (a, b) in enumerate(grid):
                cell = settings.replace(d_s=a, d_t=b)
                reinit[g] = reinitialize(clean[g], noise, eta, schedule=schedule, settings=cell, parts=False).latent
            out = sample(reinit.reshape(num_cells * num_videos, *shape[1:]), steps_per_pass[i], f"FreeInit pass {i}")
            clean = out.reshape(num_cells, *shape)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0

    def score(x: torch.Tensor) -> np.ndarray:
        return metrics.frame_cosine_similarity(x.clamp(-1, 1)).double().numpy()

    base_c = score(baseline)
    if num_iters == 1:
        fi_c = np.broadcast_to(base_c, (num_cells, num_videos)).copy()
    else:
        fi_c = score(clean.reshape(num_cells * num_videos, *shape[1:])).reshape(num_cells, num_videos)
    gain_v = (fi_c - base_c[None]).reshape(ds_values.size, dt_values.size, num_videos)
    fi_c = fi_c.reshape(ds_values.size, dt_values.size, num_videos)

    dims3 = ("d_s", "d_t", "video")
    ds = xr.Dataset(
        {
            "gain": (("d_s", "d_t"), gain_v.mean(-1), {
                "long_name": "consistency gain of FreeInit over plain sampling (paired mean)", "units": "1"}),
            "gain_se": (("d_s", "d_t"), gain_v.std(-1, ddof=1) / math.sqrt(num_videos), {
                "long_name": "standard error of the paired consistency gain", "units": "1"}),
            "gain_per_video": (dims3, gain_v, {"long_name": "consistency gain per video (FreeInit - plain)",
                                               "units": "1"}),
            "freeinit": (dims3, fi_c, {"long_name": "consistency of the FreeInit sample", "units": "1"}),
            "baseline": (("video",), base_c, {"long_name": "consistency of the plain sample", "units": "1"}),
        },
        coords={
            "d_s": ("d_s", ds_values, {"long_name": "spatial cut-off d_s", "units": "normalised frequency"}),
            "d_t": ("d_t", dt_values, {"long_name": "temporal cut-off d_t", "units": "normalised frequency"}),
            "video": ("video", np.arange(num_videos)),
            "seed": ("video", seeds, {"long_name": "torch.Generator seed of the video"}),
        },
    )
    scheduler = layout.get_scheduler(pipe)
    ds.attrs.update(
        title="FreeInit consistency gain over plain sampling on a (d_s, d_t) grid",
        metric=_METRIC,
        method=str(method),
        order=float(order),
        num_iters=num_iters,
        num_inference_steps=steps,
        steps_per_pass=np.asarray(steps_per_pass, dtype=np.int64),
        fast_sampling=int(bool(fast_sampling)),
        renoise=str(renoise),
        num_videos=num_videos,
        seeds=seeds,
        pipeline=type(pipe).__name__,
        latent_shape=np.asarray(pipe.sample_shape, dtype=np.int64),
        scheduler_class=type(scheduler).__name__,
        scheduler_config=json.dumps({k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")},
                                    default=str, sort_keys=True),
        model=model_fingerprint(pipe),
        num_pipeline_videos=int(sampled),
        seconds=round(seconds, 2),
    )
    return ds


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
    """The grid cell of ``ds`` nearest to ``(d_s, d_t)`` (per axis): its ``d_s``, ``d_t``, ``gain``, ``gain_se``."""
    cell = ds[["gain", "gain_se"]].sel(d_s=d_s, d_t=d_t, method="nearest")
    return {"d_s": float(cell.d_s), "d_t": float(cell.d_t), "gain": float(cell.gain), "gain_se": float(cell.gain_se)}


# figure functions that moved to freeinit_lab.viz.figures, reachable here for one release
__getattr__ = moved_attributes(__name__, "freeinit_lab.viz.figures", ("cutoff_map_marker", "cutoff_map_figure"))
