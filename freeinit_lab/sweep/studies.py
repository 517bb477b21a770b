"""Studies a sweep can run: one cell's measurement, by name.

A study is a function ``fn(pipe, *, seed, num_videos, **settings) -> xarray.Dataset`` that samples
``num_videos`` videos for sweep seed ``seed`` (their generators from :func:`freeinit_lab.sweep.video_seeds`, or any
other draw that depends only on ``seed`` and ``num_videos``) and returns per-video numbers along a ``video`` dim
of that size, plus any study dims of its own (``arm``, ``band``, ``source``, ...) whose sizes and labels do not
depend on the cell. Its keyword parameters are the settings a spec may put in ``grid``, ``sampler`` or
``options``.

Built in (each calls the existing study code on one cell):

============== =====================================================================================================
``freeinit``    plain sampling vs FreeInit from the same noises: consistency, first-frame consistency, flicker,
                SSIM, dynamics per ``arm`` (``plain``, ``freeinit``) and video; the paired consistency ``gain``
``cutoff_map``  :func:`freeinit_lab.measure_cutoff_map` on one ``(d_s, d_t)`` cell: ``gain``, ``freeinit``,
                ``baseline`` (and ``control`` with ``controls``) per video (seeds ``0 .. S-1`` reproduce one map of
                ``S * videos_per_seed`` videos; ``scripts/precompute_cutoff_map.py`` builds the shipped map so)
``strategies``  :func:`freeinit_lab.evaluate_strategies` of :func:`freeinit_lab.default_strategies` against held-out
                dead-leaves data: ``consistency``, ``dynamics``, ``band_power_T`` per ``row`` and video
``evidence``    ``freeinit_lab.evidence.measure_evidence`` (through :class:`WholeStudy`): findings (a)-(d) per
                ``source`` and video
``refinement``  :func:`freeinit_lab.refinement_study` (through :class:`WholeStudy`) without the stored latents
``decomposition`` ``freeinit_lab.studies.decomposition.decompose_freeinit`` (through :class:`WholeStudy`): FreeInit
                beside its control arms per ``arm`` and video, effects and explained shares with bootstrap intervals
============== =====================================================================================================

Add your own with :func:`register_study`; a study defined in a notebook travels to dask workers by value.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .spec import _ENGINE_ARGS, SweepSpecError, sampling_defaults, scheduler_config, video_seeds
from freeinit_lab._checks import require_frames, require_int

__all__ = ["Study", "register_study", "get_study", "list_studies", "STUDIES"]


@dataclass(frozen=True)
class Study:
    """A registered study: ``fn``, the settings it accepts (``None``: any), its own dims (documentation) and the
    settings that set those dims' sizes or labels (``shape_settings``: never grid keys)."""

    name: str
    fn: Callable[..., Any]
    parameters: tuple[str, ...] | None
    dims: tuple[str, ...] = ()
    min_videos: int | Callable[[Mapping[str, Any]], int] = 1
    description: str = ""
    shape_settings: tuple[str, ...] = ()

    def check(self, spec) -> None:
        """The spec's fields, then every cell's FreeInit and step settings, before any pipeline is loaded."""
        spec.validate(self.parameters)
        varied = [k for k in spec.grid if k in self.shape_settings]
        if varied:
            raise SweepSpecError(
                f"study {self.name!r} cannot vary {', '.join(map(repr, varied))} across cells: it sets the result's "
                f"dims or labels ({', '.join(self.dims)}), which all cells of a store share. Give one value under "
                "options: and run one sweep, into its own store, per value"
            )
        if not callable(self.min_videos):
            if spec.videos_per_seed < self.min_videos:
                raise SweepSpecError(f"study {self.name!r} needs videos_per_seed >= {self.min_videos} (paired "
                                     f"standard errors), got {spec.videos_per_seed}")
        else:
            need, label = self._videos_needed(spec)
            if spec.videos_per_seed < need:
                raise SweepSpecError(f"study {self.name!r} needs videos_per_seed >= {need} for cell ({label}) (its "
                                     f"settings' bootstrap and passes), got {spec.videos_per_seed}")
        self.check_settings(spec)

    def _videos_needed(self, spec) -> tuple[int, str]:
        """The largest ``min_videos(settings)`` over the spec's cells (the study function's defaults under each
        cell's settings) and that cell's label; a setting it cannot read is left to the study's own check."""
        defaults = _keyword_defaults(self.fn)
        need, label = 1, ""
        for cell in spec.cells():
            try:
                n = int(self.min_videos({**defaults, **cell.settings}))
            except (TypeError, ValueError):
                continue
            if n > need:
                need, label = n, cell.label
        return need, label

    def check_settings(self, spec) -> None:
        """Each distinct combination of settings that :class:`freeinit_lab.FreeInitSettings` validates (filter,
        cut-offs, order, passes, renoise, mix), over the study function's own defaults, and ``num_inference_steps``
        >= 1: a misspelt ``method: gausian``, a cut-off of 0 or one given as text (YAML's ``1e-1``) is refused
        here, naming the cell, not after the pipeline has loaded and earlier cells have run."""
        from freeinit_lab.core.reinit import _FIELDS, FreeInitSettings

        defaults = _keyword_defaults(self.fn)
        seen = set()
        for cell in spec.cells():
            given = {k: v for k, v in cell.settings.items() if k in _FIELDS or k == "num_inference_steps"}
            key = tuple(sorted((k, repr(v)) for k, v in given.items()))
            if not given or key in seen:
                continue
            seen.add(key)
            steps = given.pop("num_inference_steps", None)
            if steps is not None:
                require_int(f"cell ({cell.label}): num_inference_steps", steps, error=SweepSpecError)
            if given:
                try:
                    settings = FreeInitSettings(**{**{k: v for k, v in defaults.items() if k in _FIELDS}, **given})
                except (TypeError, ValueError) as err:
                    raise SweepSpecError(f"cell ({cell.label}) of study {self.name!r}: {err}") from None
                for k, v in given.items():  # "0.25" is read as 0.25, but the store would label the cell with text
                    if isinstance(v, str) and not isinstance(getattr(settings, k), str):
                        raise SweepSpecError(
                            f"cell ({cell.label}) of study {self.name!r}: {k}={v!r} is text, not a number; write "
                            f"{getattr(settings, k)!r} (YAML reads 1e-1 without a dot as text: write 1.0e-1 or 0.1)"
                        )


STUDIES: dict[str, Study] = {}


def _keyword_defaults(fn: Callable) -> dict[str, Any]:
    """The keyword defaults of a study function (or of the function a :class:`WholeStudy` adapter calls)."""
    target = fn.resolve() if hasattr(fn, "resolve") else fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _parameters(fn: Callable) -> tuple[str, ...] | None:
    sig = inspect.signature(fn)
    names = []
    for i, (name, p) in enumerate(sig.parameters.items()):
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if i == 0 or name in _ENGINE_ARGS or p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        names.append(name)
    missing = [a for a in _ENGINE_ARGS if a not in sig.parameters]
    if missing:
        raise TypeError(f"a study function takes (pipe, *, seed, num_videos, **settings); {fn!r} lacks {missing}")
    return tuple(names)


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    """Names as a tuple; one string is one name (``dims="arm"``), not its letters."""
    return (names,) if isinstance(names, str) else tuple(names)


def register_study(name: str, fn: Callable[..., Any], *, dims: str | Sequence[str] = (),
                   parameters: str | Sequence[str] | None = None,
                   min_videos: int | Callable[[Mapping[str, Any]], int] = 1, description: str = "",
                   shape_settings: str | Sequence[str] = (), overwrite: bool = False) -> Study:
    """Make ``fn`` runnable as ``study: name``.

    Parameters
    ----------
    name
        The name specs use.
    fn
        ``fn(pipe, *, seed, num_videos, **settings) -> xarray.Dataset`` with a ``video`` dim of size
        ``num_videos``.
    dims
        The study's own dims besides ``video`` (e.g. ``("arm",)``), for documentation and the result check.
    parameters
        Settings the study accepts; default: ``fn``'s keyword parameters (any, if it takes ``**settings``).
    min_videos
        Smallest ``videos_per_seed`` that makes sense (2 for paired standard errors), or a function of a cell's
        settings (the study function's defaults under the cell's) returning it, checked for every cell.
    shape_settings
        Settings that change the size or labels of the study's own dims (e.g. a number of bands): a spec may fix
        them (``options``, ``sampler``) but not put them in its grid, which is refused before any cell runs.
    overwrite
        Replace an existing registration of ``name``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"study name must be a non-empty string, got {name!r}")
    if name in STUDIES and not overwrite:
        raise ValueError(f"a study named {name!r} is registered already; pass overwrite=True to replace it")
    params = _names(parameters) if parameters is not None else _parameters(fn)
    study = Study(name=name, fn=fn, parameters=params, dims=_names(dims),
                  min_videos=min_videos if callable(min_videos) else int(min_videos),
                  description=description or (inspect.getdoc(fn) or "").split("\n")[0],
                  shape_settings=_names(shape_settings))
    STUDIES[name] = study
    return study


def get_study(name: str) -> Study:
    """The registered study ``name``; the error lists the known ones."""
    try:
        return STUDIES[name]
    except (KeyError, TypeError):
        raise SweepSpecError(f"unknown study {name!r}; registered: {', '.join(sorted(STUDIES))} "
                             "(add one with freeinit_lab.sweep.register_study)") from None


def list_studies() -> dict[str, str]:
    """``{name: one-line description}`` of the registered studies."""
    return {k: v.description for k, v in sorted(STUDIES.items())}


# ----------------------------------------------------------------------------------------------------------------
# built-in studies
# ----------------------------------------------------------------------------------------------------------------
def _generators(seed: int, num_videos: int):
    import torch

    return [torch.Generator().manual_seed(s) for s in video_seeds(seed, num_videos)]


def _pixel_latents(pipe: Any) -> bool:
    """Whether ``output_type="latent"`` gives the video itself in ``[-1, 1]`` (the embedded pipelines)."""
    import freeinit_lab as fl

    return hasattr(pipe, "sample_shape") and fl.get_layout(pipe).is_canonical


def _video_metrics(video, *, layout: str, value_range: tuple[float, float]):
    """:func:`freeinit_lab.metrics.consistency_report` (``frame_cosine`` named ``consistency``) plus ``dynamics``."""
    import xarray as xr

    from freeinit_lab import metrics

    report = metrics.consistency_report(video, layout=layout, value_range=value_range).rename(
        frame_cosine="consistency", frame_cosine_first="consistency_first")
    x = metrics.as_video(video, layout=layout, value_range=value_range)  # (b, c, f, h, w) float64 in [0, 1]
    dyn = (x[:, :, 1:] - x[:, :, :-1]).pow(2).mean(dim=(1, 2, 3, 4)).sqrt().numpy()
    report["dynamics"] = xr.DataArray(dyn, dims=("batch",), attrs={
        "long_name": "RMS change between consecutive frames (frames in [0, 1])", "units": "1"})
    return report.rename(batch="video")


def freeinit_study(
    pipe: Any,
    *,
    seed: int,
    num_videos: int,
    num_iters: int = 3,
    method: str = "gaussian",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    fast_sampling: bool = False,
    renoise: str = "same",
    mix: str = "freeinit",
    num_inference_steps: int = 25,
    guidance_scale: float | None = None,
    prompt: str | None = None,
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
):
    """FreeInit vs plain sampling per video, from the same initial noises (paired).

    Both arms start from the noise video ``v`` draws from its own generator (:func:`freeinit_lab.sweep.video_seeds`);
    plain sampling is FreeInit's pass 0 (run separately with ``fast_sampling``, whose pass 0 has fewer steps).
    Pipelines whose latents are the video (the embedded ones) are scored on the latent output clipped to
    ``[-1, 1]`` (decoded by ``pipe.decode_latents`` first when the model space is normalised); others on their
    decoded ``output_type="np"`` frames. The settings are :func:`freeinit_lab.freeinit`'s,
    except the default filter: Gaussian ``d_s = d_t = 0.25`` (the paper's main table, as the other studies use).

    Returns
    -------
    xarray.Dataset
        ``consistency``, ``consistency_first``, ``flicker``, ``ssim``, ``dynamics`` ``(arm, video)`` with
        ``arm = ["plain", "freeinit"]``; ``gain`` ``(video)`` (FreeInit − plain consistency); ``denoiser_calls``
        ``(arm)`` (pipeline denoiser forward calls for the batch).
    """
    import torch
    import xarray as xr

    import freeinit_lab as fl

    if num_frames is not None:  # consistency between frames needs 2: refused before sampling, as the other studies
        require_frames("freeinit_study", (1, require_int("num_frames", num_frames, why=" (frames per video)"), 1, 1))
    elif hasattr(pipe, "sample_shape"):
        require_frames("freeinit_study", pipe.sample_shape)
    pixel = _pixel_latents(pipe)
    call: dict[str, Any] = dict(num_inference_steps=int(num_inference_steps))
    if prompt is not None:  # one prompt per video (AnimateDiff ignores num_videos_per_prompt)
        call["prompt"] = [prompt] * int(num_videos)
    elif "batch_size" in inspect.signature(pipe.__call__).parameters:  # unconditional pipelines
        call["batch_size"] = int(num_videos)
    else:
        call["num_videos_per_prompt"] = int(num_videos)
    for key, value in (("guidance_scale", guidance_scale), ("num_frames", num_frames), ("height", height),
                       ("width", width)):
        if value is not None:
            call[key] = value
    output_type = "latent" if pixel else "np"
    res = fl.freeinit(pipe, num_iters=int(num_iters), method=method, d_s=float(d_s), d_t=float(d_t),
                      order=float(order), fast_sampling=bool(fast_sampling), renoise=renoise, mix=mix,
                      generator=_generators(seed, num_videos), output_type=output_type, progress=False,
                      return_iteration_frames=not pixel and not fast_sampling, **call)
    plain_calls = res.iterations[0].num_denoiser_evals
    if fast_sampling:  # pass 0 has fewer steps: run the plain arm, counting its denoiser calls as FreeInit does
        from freeinit_lab.engine.loop import _count_denoiser
        from freeinit_lab.hooks.layouts import get_layout

        with _count_denoiser(get_layout(pipe).get_denoisers(pipe)) as counted:
            sampled = pipe(generator=_generators(seed, num_videos), output_type=output_type, **call)
        plain = sampled.frames if hasattr(sampled, "frames") else sampled[0]
        plain_calls = int(counted["calls"])  # per step × steps would be wrong for Heun (2n − 1 steps)
    elif pixel:
        plain = res.iterations[0].clean_latent
    else:
        plain = res.iterations[0].frames
    final = res.latents if pixel else res.frames
    if pixel and getattr(pipe, "normalizer", None) is not None:  # a normalised model space: score decoded video
        kw = dict(layout="bfchw", value_range=(0.0, 1.0))
        plain, final = pipe.decode_latents(torch.as_tensor(plain)), pipe.decode_latents(torch.as_tensor(final))
    elif pixel:
        kw = dict(layout="bcfhw", value_range=(-1.0, 1.0))
        plain, final = torch.as_tensor(plain).float().clamp(-1, 1), torch.as_tensor(final).float().clamp(-1, 1)
    else:
        kw = dict(layout="bfhwc", value_range=(0.0, 1.0))
    arms = ["plain", "freeinit"]
    out = xr.concat([_video_metrics(plain, **kw), _video_metrics(final, **kw)], dim="arm")
    out = out.assign_coords(arm=arms, video=np.arange(num_videos))
    out["gain"] = out["consistency"].sel(arm="freeinit", drop=True) - out["consistency"].sel(arm="plain", drop=True)
    out["gain"].attrs = {"long_name": "consistency gain of FreeInit over plain sampling (paired)", "units": "1"}
    out["denoiser_calls"] = ("arm", np.array([plain_calls, res.num_denoiser_evals], dtype=np.int64),
                             {"long_name": "denoiser forward calls for the cell's batch"})
    return out


_PLAIN_CACHE: dict[tuple, Any] = {}
_PLAIN_CACHE_SIZE = 64


def _cached_plain(pipe: Any, seeds: Sequence[int], steps: int):
    """Plain samples of ``seeds`` (:func:`freeinit_lab.studies.cutoff_map.plain_samples`), kept per process.

    Every ``(d_s, d_t)`` cell of a map sweep starts from the same plain samples of its seed's videos; keyed by the
    pipeline object, its weights' fingerprint, its scheduler's class and configuration
    (:func:`~freeinit_lab.sweep.spec.scheduler_config`), its sampling defaults
    (:func:`~freeinit_lab.sweep.spec.sampling_defaults`), the seeds and the step count, so a changed model or sampler
    never reuses another's samples. Holds the last ``_PLAIN_CACHE_SIZE`` entries.
    """
    from freeinit_lab.studies.cutoff_map import model_fingerprint, plain_samples

    key = (id(pipe), model_fingerprint(pipe), scheduler_config(pipe), sampling_defaults(pipe),
           tuple(int(s) for s in seeds), int(steps))
    if key not in _PLAIN_CACHE:
        while len(_PLAIN_CACHE) >= _PLAIN_CACHE_SIZE:
            _PLAIN_CACHE.pop(next(iter(_PLAIN_CACHE)))
        _PLAIN_CACHE[key] = plain_samples(pipe, seeds, steps)[1]
    return _PLAIN_CACHE[key]


def cutoff_map_study(
    pipe: Any,
    *,
    seed: int,
    num_videos: int,
    d_s: float = 0.25,
    d_t: float = 0.25,
    method: str = "gaussian",
    order: float = 4,
    num_iters: int = 3,
    num_inference_steps: int | None = None,
    fast_sampling: bool = False,
    renoise: str = "same",
    controls: Sequence[str] = (),
):
    """One (d_s, d_t) cell of the cutoff map: FreeInit's paired consistency gain per video (and its controls).

    The cell is :func:`freeinit_lab.measure_cutoff_map` with one ``d_s`` and one ``d_t``.

    Runs the map on the videos ``seed * num_videos .. seed * num_videos + num_videos - 1`` (one generator each, as
    :func:`freeinit_lab.sweep.video_seeds`), so a sweep over seeds ``0 .. S-1`` holds the per-video numbers of one
    map of ``S * num_videos`` videos from seed 0 (:func:`freeinit_lab.cutoff_map.cutoff_map_from_sweep` turns the
    store into that map). ``num_inference_steps=None`` is the pipeline's stored sampler. The plain samples of a
    seed's videos are computed once per process and shared by all its cells (without ``fast_sampling`` they are
    also FreeInit's first pass), so a map sweep costs what one :func:`~freeinit_lab.measure_cutoff_map` call does.
    ``controls`` (e.g. ``["mask_only"]``, or one name) adds ``control_consistency`` ``(control, video)``.
    """
    import xarray as xr

    import freeinit_lab as fl

    from freeinit_lab.studies.cutoff_map import check_map_controls

    controls = check_map_controls(controls, num_iters)  # one name is one control; checked before the plain samples
    steps = int(num_inference_steps if num_inference_steps is not None else pipe.default_num_inference_steps)
    seeds = video_seeds(seed, num_videos)
    plain = _cached_plain(pipe, seeds, steps)
    cmap = fl.measure_cutoff_map(pipe, d_s=[float(d_s)], d_t=[float(d_t)], method=method, order=order,
                                 num_iters=int(num_iters), num_inference_steps=steps,
                                 fast_sampling=bool(fast_sampling), renoise=renoise, num_videos=int(num_videos),
                                 seed=seeds[0], batch_size=int(num_videos) * (1 + len(controls)), progress=False,
                                 controls=controls, plain=plain)
    cell = cmap.isel(d_s=0, d_t=0, drop=True)
    data = {name: cell[source].variable for name, source in
            (("gain", "gain_per_video"), ("freeinit", "freeinit"), ("baseline", "baseline"),
             ("control_consistency", "control_consistency"))
            if source in cell}
    out = xr.Dataset(data, coords={"video": np.arange(num_videos),
                                   **({"control": list(controls)} if controls else {})})
    out["gain"].attrs = {"long_name": "consistency gain of FreeInit over plain sampling (paired)", "units": "1"}
    return out


def strategies_study(
    pipe: Any,
    *,
    seed: int,
    num_videos: int,
    method: str = "gaussian",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    num_iters: int = 4,
    fast_sampling: bool = False,
    num_inference_steps: int = 25,
    num_bands: int = 6,
    num_data_videos: int = 32,
):
    """Initialisation strategies against held-out data: consistency, dynamics, band power at T per row and video.

    :func:`freeinit_lab.evaluate_strategies` of :func:`freeinit_lab.default_strategies` on one cell.

    Data, marginal and oracle latents are held-out videos of the model's own training distribution
    (:func:`freeinit_lab.held_out_videos`: the embedded default's data generator, or an exact-score model's
    prior), seeded from ``seed``; the noises come from ``evaluate_strategies``'s own seeded draw. ``num_iters``
    must not be a grid key (it changes the rows).
    """
    import freeinit_lab as fl
    from freeinit_lab.hooks.layouts import get_scheduler

    s0 = 940_000_000 + 10_000 * int(seed)
    data = fl.held_out_videos(pipe, int(num_data_videos), s0)
    marginal = fl.TerminalMarginal.from_latents(fl.held_out_videos(pipe, int(num_data_videos), s0 + 1),
                                                get_scheduler(pipe))
    oracle = fl.held_out_videos(pipe, int(num_videos), s0 + 2)
    strategies = fl.default_strategies(num_iters=int(num_iters), method=method, d_s=float(d_s), d_t=float(d_t),
                                       order=float(order), fast_sampling=bool(fast_sampling))
    ds = fl.evaluate_strategies(pipe, strategies, data=data, marginal=marginal, oracle_latents=oracle,
                                num_videos=int(num_videos), seed=int(seed),
                                num_inference_steps=int(num_inference_steps), num_bands=int(num_bands))
    ds.attrs = {}
    return ds


class WholeStudy:
    """A study made from an existing whole-study function ``f(pipe, *, num_videos, seed, **settings) -> Dataset``.

    One cell is one call with the cell's ``seed`` and ``num_videos``; ``fixed`` arguments are added to every call,
    ``drop`` variables removed from the result. The function is found by its import path at call time (so the
    adapter pickles small), and its scalar keyword parameters are the study's settings.
    """

    def __init__(self, target: str, *, fixed: dict[str, Any] | None = None, drop: Sequence[str] = (),
                 exclude: Sequence[str] = (), extra: Sequence[str] = ()):
        self.target, self.fixed, self.drop = target, dict(fixed or {}), tuple(drop)
        self.exclude = ("num_videos", "seed", "progress", *self.fixed, *exclude)
        self.extra = tuple(extra)  # settings the function takes through **kwargs (pipeline call arguments)

    def resolve(self) -> Callable[..., Any]:
        import importlib

        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def parameters(self) -> tuple[str, ...]:
        params = list(inspect.signature(self.resolve()).parameters.values())[1:]
        named = [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        return tuple(p for p in named if p not in self.exclude) + self.extra

    def __call__(self, pipe: Any, *, seed: int, num_videos: int, **settings: Any):
        fn = self.resolve()
        quiet = {"progress": False} if "progress" in inspect.signature(fn).parameters else {}
        ds = fn(pipe, num_videos=int(num_videos), seed=int(seed), **quiet, **self.fixed, **settings)
        ds = ds.drop_vars([v for v in self.drop if v in ds])
        ds.attrs = {}
        return ds


def _register_whole(name: str, adapter: WholeStudy, **kwargs: Any) -> None:
    kwargs.setdefault("description", (inspect.getdoc(adapter.resolve()) or "").split("\n")[0])
    register_study(name, adapter, parameters=adapter.parameters(), **kwargs)


register_study("freeinit", freeinit_study, dims=("arm",))
register_study("cutoff_map", cutoff_map_study, min_videos=2)
register_study("strategies", strategies_study, dims=("row", "band", "data_video"), min_videos=2,
               shape_settings=("num_iters", "num_bands", "num_data_videos"))
def _decomposition_videos(settings: Mapping[str, Any]) -> int:
    """``decompose_freeinit``'s own floor for a cell's settings (its bootstrap resamples, shuffled_low's passes)."""
    from freeinit_lab.studies.decomposition import videos_needed

    return videos_needed(settings["num_bootstrap"], settings.get("controls"), settings["num_iters"])


_register_whole("decomposition",
                # per-pass numbers have a num_iters-long dim (a grid key may change it): the store keeps the final ones
                WholeStudy("freeinit_lab.studies.decomposition:decompose_freeinit",
                           drop=("pass_consistency", "pass_dynamics", "pass"),
                           exclude=("reference", "chunk_size", "keep_latents", "return_latents", "oracle"),
                           extra=("num_inference_steps", "prompt", "guidance_scale", "num_frames", "height", "width")),
                dims=("arm", "band", "control", "metric"), min_videos=_decomposition_videos,
                shape_settings=("num_bands", "controls"),
                description="FreeInit beside its control arms on the same noises: effects and explained shares")
_register_whole("evidence", WholeStudy("freeinit_lab.evidence:measure_evidence", exclude=("reference", "batch_size")),
                dims=("source",), min_videos=2,
                description="the paper's findings (a)-(d) per source (baseline, FreeInit, oracle, data) and video")
_register_whole("refinement", WholeStudy("freeinit_lab.refinement:refinement_study", drop=("clean_latent",),
                                         exclude=("reference", "filters")),
                dims=("sampling", "iteration", "band", "filter", "source"), min_videos=2,
                shape_settings=("num_iters", "num_bands"),
                description="FreeInit pass by pass, coarse-to-fine vs full, filters, baseline/FreeInit/oracle")
