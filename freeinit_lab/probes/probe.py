"""Probes: record every denoising step of an unmodified diffusers video pipeline as labelled xarray data.

>>> with LatentProbe(pipe, capture=("latents", "x0_pred")) as probe:  # doctest: +SKIP
...     pipe("a cat", num_inference_steps=25, generator=torch.Generator().manual_seed(0))
>>> ds = probe.to_xarray()  # doctest: +SKIP

Capture sites
-------------
Every site has one stable name; it keys the variable of the record (TransformerLens style).

``"latents"``
    The latent the pipeline continues with after the scheduler step of step ``i``: ``z_{t_{i+1}}``, or the
    final clean latent after the last step. Where the pipeline has ``callback_on_step_end`` this is the latent
    *after* a user callback passed to the call (what the pipeline really continues with).
``"latents_in"``
    The sample the scheduler step received: ``z_{t_i}`` at the step's own ``timestep`` (step 0 holds the
    initial noise ``z_T`` of each pass).
``"x0_pred"``
    The model's prediction of the clean latent at step ``i``: the scheduler's ``pred_original_sample`` when its
    output has one, else computed from the schedule (``z_t = a_t z_0 + b_t eps``) and the model output for
    ``prediction_type`` epsilon (``(z - b eps) / a``), v (``a z - b v``), sample, or flow matching
    (``z - sigma v``).
``"model_output"``
    The (guided) model output handed to the scheduler step (noise, v or velocity prediction).

How it observes
---------------
While the ``with`` block is open the probe

* wraps the scheduler's ``step`` and ``set_timesteps`` (instance attributes, signatures kept so pipelines that
  inspect them behave the same); the scheduler is ``pipe.scheduler``, or the attribute the pipeline's
  :class:`~freeinit_lab.hooks.layouts.LatentLayout` names;
* swaps ``pipe.__class__`` for a subclass of the same name that (a) adds its own ``callback_on_step_end`` to
  each call, chained with the caller's callback, which is still called with the same arguments and whose return
  value is still honoured, for pipelines that have one (``TextToVideoSDPipeline`` has not: the step wrapper
  alone records there), (b) wraps ``prepare_latents`` to learn the latent shape and check the ``max_bytes``
  budget before the first denoising step, and (c) wraps diffusers' ``_apply_free_init`` to tag FreeInit
  iterations explicitly.

Everything is removed in ``__exit__`` (a ``finally``), also when the call raises; the record keeps the steps
stored so far and is marked ``complete = 0`` (``complete = 1`` only when the block finished cleanly). Nothing is changed in the
tensors the pipeline sees: outputs are bit-identical with and without a probe.

Iterations
----------
Dim ``iteration`` counts *sampling passes* in the order they ran. A new pass starts when (any of) a pipeline
call starts, diffusers' FreeInit or :func:`mark_iteration` announces one, ``scheduler.set_timesteps`` is called
after steps were recorded, the callback's step index restarts, or the timestep rises (FreeInit restarts at the
noisiest timestep). Coords on ``iteration``: ``call`` (which pipeline call), ``run`` (which generation: FreeInit
passes of one video share a run), ``freeinit_iteration`` (index within the run), ``seed`` (-1 if unknown) and
``num_steps`` (steps of that pass, kept or not).

Memory modes
------------
``dtype=torch.float16`` halves the record; ``every=k`` keeps steps ``0, k, 2k, …`` and the last step of each
pass; ``mode="band_power"`` keeps only the mean power of each radial frequency band (``band_power`` of
:mod:`freeinit_lab.spectral`, a few numbers per step); ``store="run.zarr"`` streams every step to a zarr store
on disk. ``max_bytes`` bounds the memory the record may hold: a call whose capture would exceed it is refused
before sampling starts, with the estimate and the options in the message.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from freeinit_lab._checks import require_int
from freeinit_lab.core.dims import VIDEO_DIMS as _VIDEO_DIMS
from freeinit_lab.core.reinit import fast_sampling_steps
from freeinit_lab.hooks.events import publish_pass, subscribe
from freeinit_lab.hooks.outputs import read_step_output, step_signature
from freeinit_lab.hooks.patching import PatchHandle, patch, patch_class_method
from freeinit_lab.probes.io import _INTERNAL_ATTRS, STREAM_MARKER, mark_complete, seal_store
from freeinit_lab.probes.budget import ProbeBudgetError, _as_dtype, _fmt_bytes, estimate_capture_bytes
from freeinit_lab.probes.record import (
    CAPTURE_SITES,
    RECORD_VERSION,
    RECORDERS,
    _config_json,
    _jsonable,
    _plain_attr,
    _qualname,
    _seed_of,
)
from freeinit_lab.probes.passes import PassTracker
from freeinit_lab.probes.sinks import _MemorySink, _Record, _RecordLayout, _ZarrSink, RecordSink

#: The label of the ``step`` coord of every record, in memory or streamed.
_STEP_ATTRS = {"long_name": "denoising step of the pass"}

__all__ = [
    "CAPTURE_SITES",
    "LatentProbe",
    "ProbeBudgetError",
    "mark_iteration",
    "estimate_capture_bytes",
    "RECORD_VERSION",
]

_MODES = ("full", "band_power")

# open probes per pipeline (id -> probes)
_ACTIVE: dict[int, list["LatentProbe"]] = {}


# ----------------------------------------------------------------------------------------------------------------
# public helpers
# ----------------------------------------------------------------------------------------------------------------
def mark_iteration(pipe: Any, iteration: int, **settings: Any) -> None:
    """Tell the probes observing ``pipe`` that the next denoising steps are FreeInit iteration ``iteration``.

    FreeInit implementations that run each pass as its own pipeline call (``freeinit_lab.freeinit``) call this
    before each pass, so passes of one video share a ``run`` and the record carries the FreeInit settings. It
    does nothing when no probe is open on ``pipe``, so it is safe to call unconditionally.

    Parameters
    ----------
    pipe
        The pipeline about to be called.
    iteration : int
        0-based FreeInit iteration (0 = the plain first pass).
    **settings
        Plain FreeInit settings, stored in the record's attrs as ``freeinit_<name>`` (e.g. ``num_iters``,
        ``method``, ``d_s``, ``d_t``, ``order``, ``use_fast_sampling``). ``num_iters`` and
        ``use_fast_sampling`` also let the ``max_bytes`` budget count the passes still to come; better,
        ``planned_steps`` (the step count of every pass of the run, not stored in attrs) lets the first pass
        check the whole run's budget exactly, before any sampling.
    """
    publish_pass(pipe, iteration, **settings)


def _fast_sampling_steps(num_steps: int, num_iters: int, iteration: int) -> int:
    """Steps of FreeInit pass ``iteration`` with coarse-to-fine sampling (diffusers' formula)."""
    return fast_sampling_steps(num_steps, num_iters)[iteration]


# ----------------------------------------------------------------------------------------------------------------
# the probe
# ----------------------------------------------------------------------------------------------------------------
class LatentProbe:
    """Record the denoising trajectory of a diffusers video pipeline, step by step, as an ``xarray.Dataset``.

    Use it as a context manager around unmodified pipeline calls (or a ``freeinit(...)`` call); see the module
    docstring for the capture sites, how iterations are told apart and the memory modes.

    Parameters
    ----------
    pipe
        A diffusers pipeline whose latent layout is known to :func:`freeinit_lab.layouts.get_layout` (or pass
        ``layout``).
    capture : sequence of str
        Capture sites to record, from :data:`CAPTURE_SITES`.
    mode : {"full", "band_power"}
        ``"full"`` keeps the tensors; ``"band_power"`` keeps only the mean power per radial frequency band of
        each (dims ``batch, channel, band``; float64), using :func:`freeinit_lab.spectral.band_power`.
    dtype : torch.float32 or torch.float16
        Storage dtype of full-mode tensors (always on CPU).
    every : int
        Keep steps ``0, every, 2 * every, …`` and the last step of each pass.
    store : path, optional
        Stream each kept step to a new zarr store at this path instead of holding it in memory;
        :meth:`to_xarray` then opens the store lazily.
    max_bytes : int, optional
        Memory budget of the record. A call whose capture would push the record over it raises
        :class:`ProbeBudgetError` before its first denoising step (estimate from the latent shape that
        ``prepare_latents`` returns, the scheduler's timesteps and the FreeInit passes still to run).
    num_bands, band_edges
        Band definition for ``mode="band_power"`` (see :func:`freeinit_lab.spectral.band_masks`); default
        edges from :func:`freeinit_lab.spectral.default_band_edges` of the latent shape.
    layout : tuple of str or LatentLayout, optional
        The pipeline's latent axes in tensor order, overriding the adapter table; a LatentLayout also says where
        the scheduler and the denoiser are (otherwise the registered layout's attributes, or diffusers' names).

    Examples
    --------
    >>> import torch
    >>> from freeinit_lab.testing import tiny_animatediff_pipeline, TINY_CALL_KWARGS
    >>> pipe = tiny_animatediff_pipeline(seed=0)
    >>> with LatentProbe(pipe) as probe:
    ...     _ = pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent",
    ...              **TINY_CALL_KWARGS["AnimateDiffPipeline"])
    >>> ds = probe.to_xarray()
    >>> dict(ds.sizes)
    {'iteration': 1, 'step': 4, 'batch': 1, 'channel': 4, 'frame': 8, 'height': 16, 'width': 16}
    """

    def __init__(
        self,
        pipe: Any,
        capture: Sequence[str] | str = ("latents", "x0_pred"),
        *,
        mode: str = "full",
        dtype: torch.dtype | str = torch.float32,
        every: int = 1,
        store: str | os.PathLike | None = None,
        max_bytes: int | None = None,
        num_bands: int = 6,
        band_edges: Sequence[float] | None = None,
        layout: Sequence[str] | Any | None = None,
    ) -> None:
        from freeinit_lab.hooks.layouts import require_pipeline_instance

        require_pipeline_instance(pipe, "LatentProbe")
        if isinstance(capture, str):
            capture = (capture,)
        capture = tuple(capture)
        unknown = [c for c in capture if c not in CAPTURE_SITES]
        if unknown or not capture or len(set(capture)) != len(capture):
            raise ValueError(
                f"capture must be distinct names from {CAPTURE_SITES}; got {capture!r}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
        require_int("every", every, why=" (keep every k-th step)")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 or None; got {max_bytes!r}")
        self.pipe = pipe
        self.capture = tuple(c for c in CAPTURE_SITES if c in capture)
        self.mode = mode
        self.dtype = _as_dtype(dtype)
        self.every = int(every)
        self.store = None if store is None else os.fspath(store)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self.num_bands = int(num_bands)
        self.band_edges = None if band_edges is None else np.asarray(band_edges, dtype=np.float64)
        self._layout_arg = layout
        self._installed = False
        self._used = False
        self._interrupted = False  # a call or the block raised: the record is marked incomplete
        self._reset_state()

    # -- state --------------------------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._recorder = RECORDERS[self.mode](self.dtype, self.num_bands, self.band_edges)
        layout = _RecordLayout(names=self.capture, dims=self._recorder.dims, np_dtype=self._recorder.np_dtype)
        if self.store is None:
            self._sink: RecordSink = _MemorySink(layout)
        else:  # what makes a store recognisably a probe's from its first write (probes.io._STREAMED_ATTRS)
            identity = {"record_version": RECORD_VERSION, "capture": " ".join(self.capture),
                        "mode": self._recorder.mode, STREAM_MARKER: 1}
            self._sink = _ZarrSink(self.store, layout, identity)
        self._track = PassTracker()
        self._call_meta: list[dict] = []
        self._freeinit: dict[str, Any] = {}
        self._pending: _Record | None = None
        self._pending_keep = False
        self._callback_call = False
        self._budget_checked = False
        self._timesteps_set = False  # this call has set its timesteps (scheduler.timesteps is not stale)
        self._deferred_shape: tuple[int, ...] | None = None
        self._planned_steps: list[int] | None = None  # steps of every pass of a FreeInit run, from its announcement
        self._pipe_latent_shape: tuple[int, ...] | None = None
        self._item_shape: tuple[int, ...] | None = None
        self._schedule = None
        self._schedule_error: str | None = None
        self._warned_x0 = False
        self._warned_step = False
        self._sampler_coeffs: dict[tuple[int, float], tuple[float, float]] = {}  # (pass, timestep) -> (a, b)
        self._sched_hooks: list[tuple[Any, PatchHandle]] = []
        self._class_patches: list[PatchHandle] = []

    # -- context manager -----------------------------------------------------------------------------------------
    def __enter__(self) -> "LatentProbe":
        if self._installed:
            raise RuntimeError("LatentProbe is already open; use one `with` block at a time")
        if self._used:
            raise RuntimeError(
                "this LatentProbe already recorded a block; create a new LatentProbe for a new record "
                "(its data stays available via to_xarray())"
            )
        self._layout = self._resolve_layout()
        self._orig_class = type(self.pipe)
        try:
            self._install_class()
            self._install_scheduler(self._scheduler())
        except BaseException:
            self._remove()
            raise
        _ACTIVE.setdefault(id(self.pipe), []).append(self)
        self._pass_events = subscribe(self.pipe, self._on_mark)
        self._installed = True
        self._used = True
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._interrupted = True
        try:
            self._flush()
        finally:
            self._remove()  # uninstalls first, so the record is marked with its final state
            self._sync_store()
        return False

    @property
    def complete(self) -> bool:
        """Whether the capture finished: the block closed and no call in it raised."""
        return self._used and not self._installed and not self._interrupted

    # -- installation ----------------------------------------------------------------------------------------------
    def _resolve_layout(self) -> tuple[str, ...]:
        arg = self._layout_arg
        if arg is None:
            from freeinit_lab.hooks.layouts import get_layout

            return tuple(get_layout(self.pipe).dims)
        dims = tuple(getattr(arg, "dims", arg))
        if sorted(dims) != sorted(_VIDEO_DIMS):
            raise ValueError(f"layout must name the latent axes, a permutation of {_VIDEO_DIMS}; got {dims}")
        return dims

    def _scheduler(self) -> Any:
        """The scheduler to observe: at the attribute the pipeline's layout (or a ``layout=`` LatentLayout) names."""
        from freeinit_lab.hooks.layouts import LatentLayout, get_scheduler

        arg = self._layout_arg
        sched = get_scheduler(self.pipe, arg if isinstance(arg, LatentLayout) else None)
        if not callable(getattr(sched, "step", None)):
            raise AttributeError(f"{type(self.pipe).__name__}'s scheduler {type(sched).__name__} has no `step` method "
                                 "to observe")
        return sched

    def _install_class(self) -> None:
        probe = self
        base = self._orig_class
        call_sig = inspect.signature(base.__call__)

        def wrap_call(inner: Callable) -> Callable:
            def __call__(pipe_self, *args, **kwargs):
                if not probe._installed or pipe_self is not probe.pipe:
                    return inner(pipe_self, *args, **kwargs)
                return probe._run_call(pipe_self, inner, call_sig, args, kwargs)

            return functools.update_wrapper(__call__, inner)

        def wrap_prepare(inner: Callable) -> Callable:
            def prepare_latents(pipe_self, *args, **kwargs):
                out = inner(pipe_self, *args, **kwargs)
                if probe._installed and pipe_self is probe.pipe:
                    latents = out[0] if isinstance(out, tuple) else out
                    if isinstance(latents, torch.Tensor):
                        probe._on_prepare_latents(latents)
                return out

            return functools.update_wrapper(prepare_latents, inner)

        def wrap_apply(inner: Callable) -> Callable:
            def _apply_free_init(pipe_self, latents, free_init_iteration, *args, **kwargs):
                if probe._installed and pipe_self is probe.pipe:
                    probe._on_mark(int(free_init_iteration), probe._diffusers_freeinit_settings(), native=True)
                return inner(pipe_self, latents, free_init_iteration, *args, **kwargs)

            return functools.update_wrapper(_apply_free_init, inner)

        self._class_patches.append(patch_class_method(self.pipe, "__call__", wrap_call))
        if callable(getattr(base, "prepare_latents", None)):
            self._class_patches.append(patch_class_method(self.pipe, "prepare_latents", wrap_prepare))
        if callable(getattr(base, "_apply_free_init", None)):
            self._class_patches.append(patch_class_method(self.pipe, "_apply_free_init", wrap_apply))

    def _install_scheduler(self, sched: Any) -> None:
        if any(s is sched for s, _ in self._sched_hooks):
            return
        probe = self
        for name in ("step", "set_timesteps"):
            original = getattr(sched, name, None)
            if not callable(original):
                continue
            if name == "step":

                def make(inner: Callable, _sig=step_signature(sched, original), _sched=sched) -> Callable:
                    def step(*args, **kwargs):
                        out = inner(*args, **kwargs)
                        if probe._installed:
                            probe._on_step(_sched, _sig, args, kwargs, out)
                        return out

                    return step

            else:

                def make(inner: Callable) -> Callable:
                    def set_timesteps(*args, **kwargs):
                        out = inner(*args, **kwargs)
                        if probe._installed:
                            probe._on_set_timesteps()
                        return out

                    return set_timesteps

            self._sched_hooks.append((sched, patch(sched, name, make)))

    def _remove(self) -> None:
        self._installed = False
        errors = []
        for handle in [h for _, h in reversed(self._sched_hooks)] + list(reversed(self._class_patches)):
            try:
                handle.remove()
            except Exception as err:  # pragma: no cover - defensive
                errors.append(err)
        self._sched_hooks = []
        self._class_patches = []
        if getattr(self, "_pass_events", None) is not None:
            self._pass_events.remove()
            self._pass_events = None
        probes = _ACTIVE.get(id(self.pipe), [])
        if self in probes:
            probes.remove(self)
        if not probes:
            _ACTIVE.pop(id(self.pipe), None)
        if errors:  # pragma: no cover
            raise errors[0]

    # -- events ------------------------------------------------------------------------------------------------------
    def _run_call(self, pipe, base_call, call_sig, args, kwargs):
        bound = call_sig.bind_partial(pipe, *args, **kwargs)
        arguments = bound.arguments
        self._flush()
        self._budget_checked = False
        self._timesteps_set = False
        self._deferred_shape = None
        self._pipe_latent_shape = None
        seed = _seed_of(arguments.get("generator"))
        self._track.begin_call(seed if isinstance(seed, int) else (seed[0] if seed else -1))
        meta = {k: _jsonable(v) for k, v in arguments.items() if k != "self" and k != next(iter(call_sig.parameters))}
        if seed is not None:
            meta["seed"] = seed
        self._call_meta.append(meta)
        self._install_scheduler(self._scheduler())

        params = call_sig.parameters
        tensor_inputs = list(getattr(pipe, "_callback_tensor_inputs", []) or [])
        use_callback = "callback_on_step_end" in params and "latents" in tensor_inputs
        self._callback_call = use_callback
        if use_callback:
            user_cb = arguments.get("callback_on_step_end")
            param = params.get("callback_on_step_end_tensor_inputs")
            default_inputs = (
                param.default if param is not None and param.default is not inspect.Parameter.empty else ["latents"]
            )
            passed = list(arguments.get("callback_on_step_end_tensor_inputs", default_inputs) or [])
            cb, inputs = self._make_callback(user_cb, passed)
            arguments["callback_on_step_end"] = cb
            if "callback_on_step_end_tensor_inputs" in params:
                arguments["callback_on_step_end_tensor_inputs"] = inputs
        try:
            return base_call(*bound.args, **bound.kwargs)
        except BaseException:
            self._interrupted = True  # the record keeps what was stored, marked incomplete
            if self._callback_call:
                self._pending = None  # a step whose callback never returned has no "latents": not a whole step
            raise
        finally:
            self._flush()
            self._callback_call = False
            self._sync_store()

    def _make_callback(self, user_cb: Callable | None, passed: list[str]):
        """Our ``callback_on_step_end``, chained with the caller's (same arguments, its return value honoured)."""
        probe = self
        inputs = passed if "latents" in passed else [*passed, "latents"]
        try:
            from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
        except Exception:  # pragma: no cover
            PipelineCallback = MultiPipelineCallbacks = ()
        is_pipeline_cb = isinstance(user_cb, (PipelineCallback, MultiPipelineCallbacks)) if PipelineCallback else False
        # the keys the caller's callback would have seen without the probe
        user_keys = list(user_cb.tensor_inputs) if is_pipeline_cb else passed
        strip_latents = "latents" not in user_keys

        def observe(pipeline, step_index, timestep, callback_kwargs):
            latents = callback_kwargs.get("latents")
            if user_cb is None:
                out = {}
            else:
                if strip_latents:
                    seen = {k: v for k, v in callback_kwargs.items() if k != "latents"}
                else:
                    seen = callback_kwargs
                out = user_cb(pipeline, step_index, timestep, seen)
                if isinstance(out, Mapping) and isinstance(out.get("latents"), torch.Tensor):
                    latents = out["latents"]
            if probe._installed:
                probe._on_callback(int(step_index), latents)
            return out

        if is_pipeline_cb:
            # keep isinstance checks of pipelines that read `callback.tensor_inputs` working
            class _Chained(MultiPipelineCallbacks):
                def __init__(self):
                    self.callbacks = [user_cb]

                @property
                def tensor_inputs(self):
                    keys = list(user_cb.tensor_inputs)
                    return keys if "latents" in keys else [*keys, "latents"]

                def __call__(self, pipeline, step_index, timestep, callback_kwargs):
                    return observe(pipeline, step_index, timestep, callback_kwargs)

            return _Chained(), inputs
        return observe, inputs

    def _on_mark(self, iteration: int, settings: Mapping[str, Any], native: bool = False) -> None:
        self._flush()
        self._track.mark(iteration)
        settings = dict(settings)
        planned = settings.pop("planned_steps", None)
        if iteration == 0 or planned is not None:
            self._planned_steps = None if planned is None else [int(x) for x in planned]
        for k, v in settings.items():
            self._freeinit[k] = v
        if not native and iteration >= 0:
            self._freeinit.setdefault("implementation", "freeinit_lab")

    def _diffusers_freeinit_settings(self) -> dict[str, Any]:
        p = self.pipe
        return {
            "implementation": "diffusers",
            "num_iters": getattr(p, "_free_init_num_iters", None),
            "use_fast_sampling": getattr(p, "_free_init_use_fast_sampling", None),
            "method": getattr(p, "_free_init_method", None),
            "order": getattr(p, "_free_init_order", None),
            "d_s": getattr(p, "_free_init_spatial_stop_frequency", None),
            "d_t": getattr(p, "_free_init_temporal_stop_frequency", None),
        }

    def _on_set_timesteps(self) -> None:
        if self._track.pass_steps > 0:
            self._flush()
            self._track.boundary()
        self._timesteps_set = True
        deferred, self._deferred_shape = self._deferred_shape, None
        if deferred is not None:  # prepare_latents ran before this call set its timesteps
            self._check_budget(deferred)

    def _on_prepare_latents(self, latents: torch.Tensor) -> None:
        from freeinit_lab.hooks.layouts import LatentLayout, check_channel_axis

        if latents.dim() != len(self._layout):
            return
        self._pipe_latent_shape = tuple(latents.shape)
        shape = self._canonical_shape(tuple(latents.shape))
        # a layout=LatentLayout(...) also says where the denoiser is; dims alone keep the registered layout's
        arg = self._layout_arg
        check_channel_axis(self.pipe, arg if isinstance(arg, LatentLayout) else self._layout, self._pipe_latent_shape,
                           "LatentProbe",
                           fix="Pass the pipeline's real axis order as layout=... (or register it with "
                               "freeinit_lab.layouts.register_layout).")
        if self._timesteps_set:
            self._check_budget(shape)
        else:  # the scheduler still holds an earlier call's timesteps: check once this call sets its own
            self._deferred_shape = shape

    def _canonical_shape(self, pipe_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(pipe_shape[self._layout.index(d)]) for d in _VIDEO_DIMS)

    @staticmethod
    def _num_steps(sched: Any) -> int:
        timesteps = getattr(sched, "timesteps", None)
        return int(len(timesteps)) if timesteps is not None else -1

    # -- budget ---------------------------------------------------------------------------------------------------------
    def _steps_to_come(self) -> list[int]:
        """Step counts of the passes this call (or FreeInit run) will still run, for the budget estimate."""
        sched = self._scheduler()
        timesteps = getattr(sched, "timesteps", None) if self._timesteps_set else None
        n = int(len(timesteps)) if timesteps is not None else 0
        if n == 0:  # timesteps not set by this call yet: the number it asked for
            meta = self._call_meta[-1] if self._call_meta else {}
            n = int(meta.get("num_inference_steps") or 0) if isinstance(meta.get("num_inference_steps"), int) else 0
        p = self.pipe
        if getattr(p, "_free_init_num_iters", None):  # diffusers' FreeInit: every pass runs in this call
            k = int(p._free_init_num_iters)
            if getattr(p, "_free_init_use_fast_sampling", False):
                return [_fast_sampling_steps(n, k, i) for i in range(k)]
            return [n] * k
        k = self._freeinit.get("num_iters")
        planned = self._planned_steps
        if self._track.pending_mark is not None and planned and 0 <= self._track.pending_mark < len(planned):
            return [n] + [int(x) for x in planned[self._track.pending_mark + 1:]]
        if self._track.pending_mark is not None and isinstance(k, (int, np.integer)) and k > 0:
            first = int(self._track.pending_mark)
            if self._freeinit.get("use_fast_sampling"):
                # n is already this pass's (shortened) count; the full count is the last pass's
                full = n if first == k - 1 else int(round(n * k / (first + 1)))
                return [n] + [_fast_sampling_steps(full, k, i) for i in range(first + 1, k)]
            return [n] * (k - first)
        return [n]

    def _check_budget(self, canonical_shape: tuple[int, ...]) -> None:
        if self._budget_checked:
            return
        self._budget_checked = True
        if self._item_shape is not None:
            if self._recorder.shape_changed(canonical_shape, self._item_shape):
                raise ValueError(
                    f"LatentProbe records one latent shape; this call has {tuple(canonical_shape)} after "
                    f"{self._item_shape}. Use one probe per shape."
                )
        if self.max_bytes is None:
            return
        steps = self._steps_to_come()
        kw = dict(capture=self.capture, every=self.every, num_bands=self._num_bands_for(canonical_shape))
        rec = self._recorder

        def estimate(**over: Any) -> int:
            return estimate_capture_bytes(canonical_shape, steps, **{"mode": rec.mode, "dtype": self.dtype, **kw, **over})

        new = estimate()
        held = self._sink.nbytes
        in_memory = 0 if self.store is not None else new
        if held + in_memory <= self.max_bytes:
            return
        alt = [rec.cheaper_dtype(estimate)]
        n_max = max(steps) if steps else 1
        for k in (2, 5, 10):
            if k < n_max and k != self.every:
                alt.append(f"every={k} (~{_fmt_bytes(estimate(every=k))})")
                break
        alt.append(rec.cheaper_mode(estimate))
        alt = [a for a in alt if a is not None]
        if len(self.capture) > 1:
            alt.append(f"capture=({self.capture[0]!r},) (~{_fmt_bytes(new / len(self.capture))})")
        alt.append(f"store='trajectory.zarr' (streams each step to disk, ~{_fmt_bytes(new)} on disk)")
        alt.append("a larger max_bytes")
        raise ProbeBudgetError(
            f"LatentProbe refused this call before sampling: recording {'/'.join(self.capture)} "
            f"({rec.mode}, {rec.dtype_name}, every={self.every}) of latent "
            f"{tuple(canonical_shape)} over {len(steps)} pass(es) of {steps} steps needs ~{_fmt_bytes(new)}"
            + (f" on top of {_fmt_bytes(held)} already held" if held else "")
            + f", over max_bytes={self.max_bytes} ({_fmt_bytes(self.max_bytes)}). Options: "
            + "; ".join(alt)
            + "."
        )

    def _num_bands_for(self, canonical_shape) -> int:
        if self.band_edges is not None:
            return len(self.band_edges) - 1
        return self.num_bands

    # -- per-step capture ------------------------------------------------------------------------------------------
    def _to_canonical(self, x: torch.Tensor) -> torch.Tensor:
        layout = self._layout
        if x.dim() == len(layout):
            return x if layout == _VIDEO_DIMS else x.permute(*[layout.index(d) for d in _VIDEO_DIMS])
        shape = self._pipe_latent_shape
        if x.dim() == 4 and shape is not None:
            # pipelines that step frames as images (TextToVideoSD: (batch * frame, channel, height, width))
            b = shape[layout.index("batch")]
            f = shape[layout.index("frame")]
            c, h, w = (shape[layout.index(d)] for d in ("channel", "height", "width"))
            if tuple(x.shape) == (b * f, c, h, w):
                return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
        raise ValueError(
            f"LatentProbe cannot map a scheduler tensor of shape {tuple(x.shape)} onto {_VIDEO_DIMS} with layout "
            f"{layout}; register the pipeline's layout (freeinit_lab.layouts.register_layout) or pass layout=..."
        )

    def _keep(self, step: int, num_steps: int) -> bool:
        return step % self.every == 0 or (num_steps > 0 and step == num_steps - 1)

    def _store_tensor(self, x: torch.Tensor) -> torch.Tensor:
        x = self._to_canonical(x.detach())
        return self._recorder.store(x)

    def _schedule_obj(self):
        if self._schedule is None and self._schedule_error is None:
            try:
                from freeinit_lab.core.schedules import NoiseSchedule

                try:
                    self._schedule = NoiseSchedule.from_scheduler(self._scheduler())
                except ValueError:
                    if "FlowMatch" in type(self._scheduler()).__name__:
                        self._schedule = NoiseSchedule.from_scheduler(self._scheduler(), shift=1.0)
                    else:
                        raise
            except Exception as err:  # noqa: BLE001 - a schedule we cannot read only costs the coords
                self._schedule_error = f"{type(err).__name__}: {err}"
        return self._schedule

    def _coefficients(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a_t, b_t)`` of the training forward process at timesteps ``t`` (NaN where unknown)."""
        schedule = self._schedule_obj()
        if schedule is None:
            t = np.asarray(t, dtype=np.float64)
            return np.full(t.shape, np.nan), np.full(t.shape, np.nan)
        return schedule.step_coefficients(t)

    def _x0_from_output(self, sched: Any, model_output: torch.Tensor, sample: torch.Tensor, t: float,
                        coefficients: tuple[float, float] | None = None) -> torch.Tensor | None:
        schedule = self._schedule_obj()
        if schedule is None:
            return None
        pred = getattr(sched, "config", {}).get("prediction_type", "epsilon")
        return schedule.x0_from_output(model_output, sample, t, pred, coefficients=coefficients)

    @staticmethod
    def _sampler_coefficients(sched: Any) -> tuple[float, float] | None:
        """``(a, b)`` of the noise level the scheduler really used for the step just taken, if it tells.

        Multistep solvers (DPM-Solver, UniPC, DEIS) step on their own ``sigmas`` (Karras, exponential, beta
        spacings), which can lie between the training levels of the rounded integer ``timestep`` they report;
        their ``_sigma_to_alpha_sigma_t`` gives the coefficients of that sigma. Called after ``step``, which
        advanced ``step_index`` by one.
        """
        convert = getattr(sched, "_sigma_to_alpha_sigma_t", None)
        sigmas = getattr(sched, "sigmas", None)
        index = getattr(sched, "step_index", None)
        if not callable(convert) or not isinstance(sigmas, torch.Tensor) or not isinstance(index, int):
            return None
        if not 1 <= index <= len(sigmas):
            return None
        try:
            a, b = convert(sigmas[index - 1].to(torch.float64))
            a, b = float(a), float(b)
        except Exception:  # noqa: BLE001 - an unusual scheduler: fall back to the training coefficients
            return None
        return (a, b) if np.isfinite(a) and np.isfinite(b) else None

    def _on_step(self, sched: Any, sig: inspect.Signature, args: tuple, kwargs: dict, out: Any) -> None:
        self._flush()  # a step whose callback never came
        try:
            bound = sig.bind(*args, **kwargs).arguments
        except TypeError:
            return
        model_output, timestep, sample = bound.get("model_output"), bound.get("timestep"), bound.get("sample")
        if timestep is None:  # a step we cannot read: never abort the user's sampling over it
            if not self._warned_step:
                self._warned_step = True
                warnings.warn(
                    f"LatentProbe: cannot read the arguments of {type(sched).__name__}.step (its signature names "
                    "no `timestep`); those steps are not recorded",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return
        t = float(timestep.item() if isinstance(timestep, torch.Tensor) else timestep)
        step = self._track.advance(t, lambda: self._num_steps(sched))
        prev_sample, x0 = read_step_output(sched, out)
        coeffs = self._sampler_coefficients(sched)
        if coeffs is not None:
            grid = tuple(float(v[0]) for v in self._coefficients(np.array([t], dtype=np.float64)))
            if np.allclose(coeffs, grid, rtol=1e-6, atol=0.0):
                coeffs = None  # the sampler is on the training grid (its float32 sigmas aside)
            else:
                self._sampler_coeffs[(self._track.current, t)] = coeffs
        if not self._budget_checked:
            self._check_budget(tuple(self._to_canonical(prev_sample).shape))
        num_steps = self._track.passes[-1].num_steps
        keep = self._keep(step, num_steps)
        arrays: dict[str, torch.Tensor] = {}
        if keep:
            if "latents_in" in self.capture and isinstance(sample, torch.Tensor):
                arrays["latents_in"] = self._store_tensor(sample)
            if "x0_pred" in self.capture:
                if x0 is None and isinstance(model_output, torch.Tensor) and isinstance(sample, torch.Tensor):
                    x0 = self._x0_from_output(sched, model_output, sample, t, coeffs)
                    if x0 is None and not self._warned_x0:
                        self._warned_x0 = True
                        warnings.warn(
                            f"LatentProbe: {type(sched).__name__} returns no pred_original_sample and the schedule "
                            f"could not give one ({self._schedule_error or 'unsupported prediction type'}); "
                            "x0_pred is NaN",
                            RuntimeWarning,
                            stacklevel=4,
                        )
                if x0 is not None:
                    arrays["x0_pred"] = self._store_tensor(x0)
            if "model_output" in self.capture and isinstance(model_output, torch.Tensor):
                arrays["model_output"] = self._store_tensor(model_output)
            if "latents" in self.capture and not self._callback_call:
                arrays["latents"] = self._store_tensor(prev_sample)
        self._pending = _Record(self._track.current, step, t, arrays)
        self._pending_keep = keep
        if not self._callback_call:
            self._flush()

    def _on_callback(self, step_index: int, latents: torch.Tensor | None) -> None:
        rec = self._pending
        if rec is None:
            return
        if step_index != rec.step:
            # the pipeline's own step index disagrees with ours (a missed pass boundary): trust the pipeline
            if step_index == 0 and rec.step > 0:  # rec.step steps really belonged to the previous pass
                self._track.split_before(rec.step, self._num_steps(self._scheduler()))
                rec.iteration = self._track.current
            rec.step = step_index
        if self._pending_keep and "latents" in self.capture and isinstance(latents, torch.Tensor):
            rec.arrays["latents"] = self._store_tensor(latents)
        self._flush()

    def _flush(self) -> None:
        rec, self._pending = self._pending, None
        if rec is None or not self._pending_keep:
            return
        self._pending_keep = False
        first = next(iter(rec.arrays.values()), None)
        if first is None:
            return
        shape = tuple(first.shape)
        if self._item_shape is None:
            self._item_shape = shape
        names = self.capture
        full = {}
        for n in names:
            a = rec.arrays.get(n)
            if a is None:  # e.g. no x0 available: NaN of the right shape
                a = torch.full(shape, float("nan"), dtype=first.dtype)
            full[n] = a
        rec.arrays = full
        self._sink.add(rec)

    # -- output ------------------------------------------------------------------------------------------------------
    def _attrs(self) -> dict[str, Any]:
        try:
            sched = self._scheduler()
        except AttributeError:  # attrs of a record are written whatever the pipeline holds
            sched = None
        config = dict(getattr(sched, "config", {}) or {})
        schedule = self._schedule_obj()
        attrs: dict[str, Any] = {
            "record_version": RECORD_VERSION,
            "pipeline_class": _qualname(getattr(self, "_orig_class", type(self.pipe))),
            "scheduler_class": type(sched).__name__ if sched is not None else "",
            "scheduler_config": _config_json(config),
            "prediction_type": str(config.get("prediction_type", "")),
            "schedule_family": schedule.family if schedule is not None else "unknown",
            "latent_layout": " ".join(getattr(self, "_layout", _VIDEO_DIMS)),
            "capture": " ".join(self.capture),
            "mode": self._recorder.mode,
            "dtype": self._recorder.dtype_name,
            "every": self.every,
            "num_calls": self._track.call_index + 1,
            "call_kwargs": json.dumps(self._call_meta),
            "conventions": (
                "timestep/alpha/sigma: noise level of the step input z_t = alpha z0 + sigma eps (alpha_bar = "
                "alpha^2 for DDPM schedules); latents: the latent after the step (next step's noise level); "
                "x0_pred: predicted clean latent at this step; iteration: sampling pass; missing steps are NaN"
            ),
        }
        seeds = [p.seed for p in self._track.passes if p.seed >= 0]
        if seeds:
            attrs["seed"] = seeds[0]
        fi = {k: v for k, v in self._freeinit.items() if v is not None}
        attrs["freeinit_enabled"] = int(bool(fi))
        for k, v in sorted(fi.items()):
            attrs[f"freeinit_{k}"] = _plain_attr(v)
        attrs.update(self._recorder.attrs())
        return {k: _plain_attr(v) for k, v in attrs.items()}

    def _step_coords(self, timestep: np.ndarray) -> dict[str, tuple]:
        a, b = self._coefficients(timestep)
        if self._sampler_coeffs:  # the noise level the sampler really used, where it differs from the grid's
            a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
            for (i, j), t in np.ndenumerate(timestep):
                hit = self._sampler_coeffs.get((i, float(t)))
                if hit is not None:
                    a[i, j], b[i, j] = hit
        coords = {
            "timestep": (("iteration", "step"), timestep, {"long_name": "timestep of the step input"}),
            "alpha": (("iteration", "step"), a, {"long_name": "signal coefficient a_t of the step input"}),
            "sigma": (("iteration", "step"), b, {"long_name": "noise coefficient b_t of the step input"}),
        }
        schedule = self._schedule_obj()
        if schedule is not None and schedule.family == "ddpm":
            coords["alpha_bar"] = (("iteration", "step"), a**2, {"long_name": "alpha_bar_t = a_t^2"})
        return coords

    def _band_coords(self) -> dict[str, tuple]:
        return self._recorder.band_coords()

    def _pass_coords(self) -> dict[str, tuple]:
        p = self._track.passes
        return {
            "call": (("iteration",), np.array([x.call for x in p], dtype=np.int64), {"long_name": "pipeline call"}),
            "run": (("iteration",), np.array([x.run for x in p], dtype=np.int64), {"long_name": "generation run"}),
            "freeinit_iteration": (
                ("iteration",),
                np.array([x.freeinit_iteration for x in p], dtype=np.int64),
                {"long_name": "FreeInit iteration within the run"},
            ),
            "seed": (("iteration",), np.array([x.seed for x in p], dtype=np.int64), {"long_name": "generator seed"}),
            "num_steps": (
                ("iteration",),
                np.array([x.num_steps for x in p], dtype=np.int64),
                {"long_name": "denoising steps of the pass"},
            ),
        }

    def _sync_store(self) -> None:
        """Write pass coords, schedule coords and attrs of a streamed record (after each call and on exit)."""
        sink = self._sink
        if not sink.streams or sink.group is None or sink.sealed:
            return
        sink.write_passes(self._track.passes)
        n_it, n_st = sink.shape
        t = np.asarray(sink.timestep[...]) if n_it and n_st else np.zeros((0, 0))
        step_coords = self._step_coords(t)
        coords = {k: v for k, v in step_coords.items() if k != "timestep"}
        coords.update(self._band_coords())
        sink.write_attrs(self._attrs(), coords)
        # the labels of the coords the sink writes itself, as the in-memory record has them
        labels = {"timestep": step_coords["timestep"][2], "step": _STEP_ATTRS,
                  **{k: v[2] for k, v in self._pass_coords().items()}}
        for name, attrs in labels.items():
            sink.group[name].attrs.update(attrs)
        names = ["timestep", *coords, *_ZarrSink._PASS_FIELDS]
        for n in self.capture:  # the recorder's labels (band_power: "band power of ...", its units)
            sink.data[n].attrs.update({**self._recorder.var_attrs(n),
                                       "coordinates": " ".join(x for x in names if x != "band")})
        mark_complete(sink.path, complete=self.complete)
        if not self._installed:  # the block has closed: the store is final, its metadata sealed with digests
            seal_store(sink.path)
            sink.sealed = True

    def to_xarray(self) -> xr.Dataset:
        """The record as an ``xarray.Dataset``.

        Returns
        -------
        xarray.Dataset
            One variable per capture site, dims ``("iteration", "step", "batch", "channel", "frame", "height",
            "width")`` (``mode="band_power"``: ``("iteration", "step", "batch", "channel", "band")`` with coords
            ``band_lo``/``band_hi``); coords ``step`` (the pass's step index; with ``every > 1`` only kept
            steps), ``timestep``, ``alpha``, ``sigma`` (and ``alpha_bar`` for DDPM schedules) over
            ``(iteration, step)``, and ``call``, ``run``, ``freeinit_iteration``, ``seed``, ``num_steps`` over
            ``iteration``. Steps a pass did not run are NaN. Attrs are plain values (JSON strings for
            configs), so the dataset saves to NetCDF and zarr unchanged; ``complete`` is 1 only once the block
            closed without any call in it raising (0 while open or after an interruption), and
            ``num_steps_stored`` counts the ``(iteration, step)`` entries stored (see
            :func:`freeinit_lab.probes.io.mark_complete`).
        """
        self._flush()
        if self._sink.streams:
            if self._sink.group is None:
                return self._empty()
            self._sync_store()
            ds = self._sink.open()
            coord_names = [n for n in ds.variables if n not in self.capture and n not in ds.dims]
            ds.attrs = {k: v for k, v in ds.attrs.items() if k not in _INTERNAL_ATTRS}
            return ds.set_coords(coord_names)
        if not self._sink.records:
            return self._empty()
        item_shape = tuple(self._sink.records[0].arrays[self.capture[0]].shape)
        steps, timestep, data = self._sink.arrays(len(self._track.passes), item_shape)
        dims = self._sink.layout.dims
        data_vars = {n: (dims, data[n], self._recorder.var_attrs(n)) for n in self.capture}
        coords: dict[str, Any] = {
            "iteration": (("iteration",), np.arange(len(self._track.passes), dtype=np.int64)),
            "step": (("step",), steps, _STEP_ATTRS),
        }
        coords.update(self._step_coords(timestep))
        coords.update(self._pass_coords())
        coords.update(self._band_coords())
        return mark_complete(xr.Dataset(data_vars, coords=coords, attrs=self._attrs()), complete=self.complete)

    def _empty(self) -> xr.Dataset:
        return mark_complete(xr.Dataset(attrs=self._attrs()), complete=self.complete)

    # -- conveniences --------------------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes the record holds in memory now."""
        return self._sink.nbytes

    @property
    def num_passes(self) -> int:
        """Sampling passes seen so far."""
        return len(self._track.passes)

    def __repr__(self) -> str:
        state = "open" if self._installed else "closed"
        return (
            f"LatentProbe({type(self.pipe).__name__}, capture={self.capture}, mode={self.mode!r}, "
            f"dtype={str(self.dtype).replace('torch.', '')}, every={self.every}, {state}, "
            f"{self.num_passes} pass(es), {_fmt_bytes(self.nbytes)} held)"
        )
