"""FreeInit (Wu et al., arXiv 2312.07537) around any diffusers video pipeline, without modifying it.

FreeInit closes the *initialization gap*: at training time the noisiest latent ``z_T = a_T z_0 + b_T eps`` still
holds the clean video's lowest spatio-temporal frequencies (``a_T > 0``), while at inference ``z_T`` is pure
noise. FreeInit samples once, then repeatedly

1. diffuses the clean latent ``z_0`` of the previous pass to the last training timestep ``T`` with the first
   pass's initial noise ``eps`` (``renoise="same"``, as both public implementations do) or with fresh noise
   (``renoise="fresh"``, a variant: a new draw each pass): ``z_T = a_T z_0 + b_T eps``;
2. keeps the low frequencies of ``z_T`` and replaces its high frequencies by fresh Gaussian noise ``eta``:
   ``z'_T = IFFT3D(FFT3D(z_T) H + FFT3D(eta) (1 - H))`` with a 3D low-pass mask ``H``
   (:func:`freeinit_lab.spectral.lowpass_filter`, cut-offs ``d_s`` (space) and ``d_t`` (time));
3. samples again from ``z'_T``.

:func:`freeinit` runs each pass as an ordinary call of the unmodified pipeline with ``latents=`` and
``output_type="latent"``; only the last pass (or every pass, if asked) decodes. Random numbers are drawn in
diffusers' order from the caller's generator(s) — the initial noise inside the first call, then one
high-frequency draw per later pass — so on the AnimateDiff family the result equals
``pipe.enable_free_init(...)`` for the same seeds (see the tests). The forward diffusion uses
:class:`freeinit_lab.schedules.NoiseSchedule`, so DDPM-family, zero-terminal-SNR and flow-matching schedulers
each get their own ``z_T``; for the latter two the training ``z_T`` carries no signal and FreeInit has no gap to
close, which is recorded and warned about.

Examples
--------
>>> import torch
>>> from freeinit_lab import freeinit
>>> from freeinit_lab.testing import tiny_animatediff_pipeline
>>> pipe = tiny_animatediff_pipeline()
>>> res = freeinit(pipe, num_iters=3, prompt="a cat", num_frames=8, height=32, width=32,
...                num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np")
>>> res.frames.shape, len(res.iterations), res.num_denoiser_evals
((1, 8, 32, 32, 3), 3, 12)
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, Literal

import numpy as np
import torch

from freeinit_lab.core.reinit import (
    FreeInitSettings,
    draw_reinit_noise,
    fast_sampling_steps,
    reinitialize,
    resolve_settings,
)
from freeinit_lab.core.schedules import NoiseSchedule
from freeinit_lab.engine.checks import FreeInitNoGapWarning, plan_call
from freeinit_lab.engine.result import FreeInitIteration, FreeInitResult
from freeinit_lab.hooks.layouts import (
    LatentLayout,
    capture_final_latent,
    check_channel_axis,
    follow_callback_latents,
    patch_attribute,
)
from freeinit_lab.hooks.events import publish_pass
from freeinit_lab.hooks.outputs import read_pipeline_output, read_sample

__all__ = [
    "freeinit",
    "FreeInitResult",
    "FreeInitIteration",
    "FreeInitSettings",
    "fast_sampling_steps",
    "FreeInitNoGapWarning",
]

_PREPARED = "the output of prepare_latents (freeinit expects the initial latent tensor or a tuple starting with it)"


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def _throwaway_generator(generator: Any) -> Any:
    if isinstance(generator, (list, tuple)):
        return [torch.Generator(device=g.device).manual_seed(0) for g in generator]
    device = generator.device if isinstance(generator, torch.Generator) else "cpu"
    return torch.Generator(device=device).manual_seed(0)


def _clone_tree(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, tuple):
        return tuple(_clone_tree(o) for o in obj)
    if isinstance(obj, list):
        return [_clone_tree(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _clone_tree(v) for k, v in obj.items()}
    return obj


def _first_tensor(out: Any) -> torch.Tensor:
    """The latent tensor in ``prepare_latents``' output (:func:`freeinit_lab.hooks.outputs.read_sample`)."""
    return read_sample(out, _PREPARED)


@contextmanager
def _count_denoiser(modules: Sequence[torch.nn.Module]) -> Iterator[dict[str, float]]:
    """Count (and time) forward calls of the denoiser module(s); hooks are always removed."""
    stats = {"calls": 0, "seconds": 0.0}
    starts: list[float] = []

    def pre(_module, _args):
        stats["calls"] += 1
        starts.append(time.perf_counter())

    def post(_module, _args, _out):
        if starts:
            stats["seconds"] += time.perf_counter() - starts.pop()

    handles = []
    try:
        for m in modules:
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        yield stats
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _capture_initial_noise(
    pipe: Any, generator: Any, record: dict[str, Any], layout: LatentLayout
) -> Iterator[None]:
    """Wrap ``pipe.prepare_latents`` for one call: record its output (divided by ``init_noise_sigma``) and check
    user latents, generator lists and the layout's channel axis before any denoising starts."""
    if not callable(getattr(pipe, "prepare_latents", None)):
        raise TypeError(
            f"{type(pipe).__name__} has no prepare_latents method; freeinit needs it to capture the initial noise."
        )

    def make_wrapper(original: Callable) -> Callable:
        sig = inspect.signature(original)

        def prepare_latents(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            user_latents = bound.arguments.get("latents")
            if user_latents is not None and "generator" in sig.parameters:
                # the shape the pipeline would draw, from a throwaway generator (the caller's is not touched)
                probe = sig.bind(*args, **kwargs)
                probe.arguments["latents"] = None
                probe.arguments["generator"] = _throwaway_generator(bound.arguments.get("generator"))
                expected = tuple(_first_tensor(original(*probe.args, **probe.kwargs)).shape)
                if tuple(user_latents.shape) != expected:
                    raise ValueError(
                        f"latents has shape {tuple(user_latents.shape)}, but {type(pipe).__name__} samples latents "
                        f"of shape {expected} for these arguments (num_frames, height, width, batch); pass noise "
                        f"of shape {expected} or leave latents=None."
                    )
            out = original(*args, **kwargs)
            latent = _first_tensor(out)
            check_channel_axis(pipe, layout, latent.shape, "freeinit")
            gen = bound.arguments.get("generator", generator)
            if isinstance(gen, (list, tuple)) and len(gen) != latent.shape[record["batch_axis"]]:
                raise ValueError(
                    f"Got {len(gen)} generators for a batch of {latent.shape[record['batch_axis']]} videos; pass "
                    "one torch.Generator per video, or a single one."
                )
            sigma0 = float(getattr(layout.get_scheduler(pipe), "init_noise_sigma", 1.0))
            record["noise"] = (latent / sigma0).detach().clone() if sigma0 != 1.0 else latent.detach().clone()
            record["init_noise_sigma"] = sigma0
            return out

        return prepare_latents

    with patch_attribute(pipe, "prepare_latents", make_wrapper):
        yield


@contextmanager
def _reuse_text_encoding(pipe: Any, cache: list[Any], replay: bool) -> Iterator[None]:
    """Record ``pipe.encode_prompt`` outputs on the first pass and replay them (cloned) on later passes.

    Every pass calls the pipeline with the same prompt arguments and text encoding is deterministic, so this
    only saves time. Calls beyond the recorded ones fall through to the real encoder."""
    if not callable(getattr(pipe, "encode_prompt", None)):
        yield
        return
    counter = {"i": 0}

    def make_wrapper(original: Callable) -> Callable:
        def encode_prompt(*args: Any, **kwargs: Any) -> Any:
            i = counter["i"]
            counter["i"] += 1
            if replay and i < len(cache):
                return _clone_tree(cache[i])
            out = original(*args, **kwargs)
            if not replay:
                cache.append(_clone_tree(out))
            return out

        return encode_prompt

    with patch_attribute(pipe, "encode_prompt", make_wrapper):
        yield


# ----------------------------------------------------------------------------------------------------------------
# the public function
# ----------------------------------------------------------------------------------------------------------------
_SETTINGS_DEFAULTS = FreeInitSettings().to_dict()  # the keyword defaults of freeinit() below


def freeinit(
    pipe: Any,
    *,
    num_iters: int = 3,
    method: str = "butterworth",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    fast_sampling: bool = False,
    renoise: Literal["same", "fresh"] = "same",
    mix: Literal["freeinit", "variance_preserving"] = "freeinit",
    return_iteration_frames: bool = False,
    legacy_ideal_threshold: bool = False,
    reuse_text_encoding: bool = True,
    schedule: NoiseSchedule | None = None,
    progress: bool | None = None,
    settings: FreeInitSettings | None = None,
    **call_kwargs: Any,
) -> FreeInitResult:
    """Run FreeInit around an unmodified diffusers video pipeline.

    Pass 0 samples from the initial noise ``eps`` exactly as ``pipe(**call_kwargs)`` would. Each later pass
    ``i`` diffuses the previous clean latent ``z_0`` to the last training timestep ``T``,
    ``z_T = a_T z_0 + b_T eps``, reinitialises it as ``z'_T = IFFT3D(FFT3D(z_T) H + FFT3D(eta) (1 - H))`` with
    fresh Gaussian noise ``eta`` and the low-pass mask ``H``, and samples again from ``z'_T``.

    Parameters
    ----------
    pipe
        A diffusers video pipeline whose ``__call__`` accepts ``latents=`` and ``output_type="latent"`` and whose
        class (or a base class) has an entry in :data:`freeinit_lab.layouts.LAYOUTS`.
    num_iters
        Total number of sampling passes ``K`` including the plain first one (diffusers' ``num_iters``; the paper
        uses 3–5). ``num_iters=1`` is plain sampling.
    method
        Low-pass filter ``H``: ``"butterworth"`` (default, order ``order``), ``"gaussian"``, ``"ideal"``, ``"box"``.
    d_s, d_t
        Spatial and temporal normalised cut-off frequencies in (0, 1] (diffusers' ``spatial_stop_frequency`` and
        ``temporal_stop_frequency``).
    order
        Butterworth order ``n`` (4 in the paper).
    fast_sampling
        Coarse-to-fine sampling: pass ``i`` runs ``max(1, int(N / K * (i + 1)))`` steps
        (diffusers' ``use_fast_sampling``).
    renoise
        Noise of the forward diffusion ``z_0 -> z_T``: ``"same"`` reuses the first pass's initial noise (both
        public implementations); ``"fresh"`` draws new noise each pass (a variant the codes do not use). ``eta`` is drawn first
        in both cases, so the two differ only in the diffusion noise.
    mix
        Frequency mix of step 2: ``"freeinit"`` (default, both public codes) weights ``z_T`` by ``H`` and ``eta`` by
        ``1 - H``, so a bin of two unit-variance inputs has variance ``H² + (1 - H)² < 1`` where the mask is soft;
        ``"variance_preserving"`` uses weights normalised by ``sqrt(H² + (1 - H)²)`` (squares sum to one per
        frequency, :func:`freeinit_lab.spectral.variance_preserving_weights`). Identical for binary masks
        (``ideal``, ``box``).
    return_iteration_frames
        Decode every pass (into ``iterations[i].frames``), not only the last.
    legacy_ideal_threshold
        Reproduce the reference implementations' ``d^2 <= 2 d_s`` threshold of the ideal filter.
    reuse_text_encoding
        Encode the prompt once and replay it in later passes (same result, less time).
    schedule
        Forward-diffusion schedule; by default read from the pipeline's scheduler (``pipe.scheduler``, or the
        attribute its layout names) with :func:`freeinit_lab.schedules.get_schedule` (pass one built with
        ``shift=`` for flow-matching schedulers with dynamic shifting).
    progress
        Show a progress bar over passes; by default only when the pipeline's own bar is not disabled.
    settings
        All FreeInit settings at once (:class:`~freeinit_lab.core.reinit.FreeInitSettings`), instead of the
        keywords ``num_iters`` ... ``legacy_ideal_threshold`` above (passing both is an error).
    **call_kwargs
        Passed to every pipeline call (prompt, num_frames, height, width, num_inference_steps, guidance_scale,
        generator, output_type, latents, ...). ``generator`` may be one ``torch.Generator`` or a list of one per
        video; ``latents`` (optional) is the initial noise of pass 0.

    Returns
    -------
    FreeInitResult
        ``latents`` (final clean latent, pipeline order), ``frames`` (output for ``output_type``),
        ``iterations`` and ``to_xarray()``.

    Raises
    ------
    ValueError, TypeError
        Before any denoising, for ``num_iters < 1``, an unknown ``renoise``, ``mix`` or filter, cut-offs outside
        (0, 1], a pipeline without ``latents``/``output_type`` support or without a layout, diffusers' own FreeInit
        enabled, ``return_dict`` passed, a generator list of the wrong length, or ``latents`` of the wrong shape.

    Warns
    -----
    FreeInitNoGapWarning
        When the scheduler's training ``z_T`` carries no signal (zero terminal SNR, flow matching with
        ``sigma_max = 1``): FreeInit then only mixes noise with noise.

    Notes
    -----
    ``callback_on_step_end`` (if passed) fires in every pass; its step index restarts at 0 each pass.
    Stochastic samplers (DDPM, Euler ancestral) draw from the same generator inside each pass, in the same order
    as diffusers' built-in FreeInit.
    """
    t_start = time.perf_counter()
    # ---------------------------------------------------------------- checks (before any model runs)
    s = resolve_settings(
        settings, _SETTINGS_DEFAULTS, num_iters=num_iters, method=method, d_s=d_s, d_t=d_t, order=order,
        fast_sampling=fast_sampling, renoise=renoise, mix=mix, legacy_ideal_threshold=legacy_ideal_threshold,
    )
    plan = plan_call(pipe, s, schedule, call_kwargs)
    num_iters, layout, schedule = s.num_iters, plan.layout, plan.schedule
    call_kwargs, generator, user_latents = plan.call_kwargs, plan.generator, plan.user_latents
    output_type, steps, steps_per_pass = plan.output_type, plan.steps, plan.steps_per_pass
    t_terminal, a_T, b_T, params = plan.t_terminal, plan.a_T, plan.b_T, plan.params
    has_decode = output_type != "latent"
    use_return_dict = "return_dict" in params

    if progress is None:
        progress = not getattr(pipe, "_progress_bar_config", {}).get("disable", False)
    pbar = None
    if progress and num_iters > 1:
        from tqdm.auto import tqdm

        pbar = tqdm(total=num_iters, desc="FreeInit passes", leave=False)

    # ---------------------------------------------------------------- passes
    iterations: list[FreeInitIteration] = []
    record: dict[str, Any] = {"batch_axis": layout.batch_axis()}
    text_cache: list[Any] = []
    denoisers = layout.get_denoisers(pipe)
    eps = None  # initial noise, pipeline order
    clean = None  # last clean latent, pipeline order
    frames: Any = None
    try:
        for i in range(num_iters):
            t0 = t_start if i == 0 else time.perf_counter()  # pass 0 also carries the setup above
            # observers (an open LatentProbe) tag this pass as FreeInit iteration i of one run
            publish_pass(
                pipe, i, num_iters=num_iters, method=s.method, d_s=s.d_s, d_t=s.d_t, order=s.order,
                use_fast_sampling=s.fast_sampling, renoise=s.renoise, mix=s.mix, planned_steps=list(steps_per_pass),
            )
            if i == 0:
                latents_in = user_latents
                signal_c = noise_c = None
            else:
                # FreeInit's reinitialisation; the draws in the pipeline's own shape (diffusers' order)
                eta, diffusion_noise = draw_reinit_noise(
                    clean.shape, generator, renoise=s.renoise, initial_noise=eps, device=clean.device
                )
                reinit_c, signal_c, noise_c = reinitialize(
                    layout.to_canonical(clean).to(torch.float32),
                    layout.to_canonical(diffusion_noise).to(torch.float32),
                    layout.to_canonical(eta),
                    schedule=schedule,
                    settings=s,
                )
                latents_in = layout.from_canonical(reinit_c).to(eps.dtype)

            decode = has_decode and (i == num_iters - 1 or return_iteration_frames)
            kwargs = dict(call_kwargs)
            kwargs.update(
                latents=latents_in,
                generator=generator,
                num_inference_steps=steps_per_pass[i],
                output_type=output_type if decode else "latent",
            )
            if use_return_dict:
                kwargs["return_dict"] = False
            t_call = time.perf_counter()
            with ExitStack() as stack:
                if i == 0:
                    stack.enter_context(_capture_initial_noise(pipe, generator, record, layout))
                if reuse_text_encoding:
                    stack.enter_context(_reuse_text_encoding(pipe, text_cache, replay=i > 0))
                counter = stack.enter_context(_count_denoiser(denoisers))
                cap = stack.enter_context(capture_final_latent(pipe, layout)) if decode else None
                user_cb = kwargs.get("callback_on_step_end")
                if cap is not None and layout.final_latent == "scheduler_step" and user_cb is not None:
                    # the latent a callback returns after the last step is the one the pipeline decodes
                    kwargs["callback_on_step_end"] = follow_callback_latents(user_cb, cap)
                out = pipe(**kwargs)
            t_after = time.perf_counter()
            out0 = read_pipeline_output(out)
            if decode:
                if cap["latent"] is None:
                    raise RuntimeError(
                        f"{type(pipe).__name__} decoded without going through {layout.final_latent!r}; register a "
                        "layout with the other final_latent strategy."
                    )
                clean = cap["latent"]
                pass_frames = out0
            else:
                clean = out0.detach().clone()
                pass_frames = clean
            if i == 0:
                eps = record["noise"]
                initial_c = layout.to_canonical(eps).to(torch.float32)
                signal_c = torch.zeros_like(initial_c)
                noise_c = initial_c
            else:
                initial_c = layout.to_canonical(latents_in).to(torch.float32)
            iterations.append(
                FreeInitIteration(
                    index=i,
                    num_inference_steps=steps_per_pass[i],
                    initial_latent=initial_c.detach().cpu().clone(),
                    clean_latent=layout.to_canonical(clean).detach().cpu().clone(),
                    signal=signal_c.detach().cpu().clone(),
                    noise=noise_c.detach().cpu().clone(),
                    num_denoiser_evals=int(counter["calls"]),
                    seconds=time.perf_counter() - t0,
                    denoiser_seconds=float(counter["seconds"]),
                    own_seconds=(t_call - t0) + (time.perf_counter() - t_after),
                    frames=pass_frames if return_iteration_frames else None,
                )
            )
            frames = pass_frames
            if pbar is not None:
                pbar.update()
    finally:
        if pbar is not None:
            pbar.close()

    with np.errstate(divide="ignore"):
        snr_db = float(10 * np.log10(schedule.terminal_snr)) if schedule.terminal_snr > 0 else -math.inf
    scheduler = layout.get_scheduler(pipe)
    settings = {
        "pipeline_class": type(pipe).__name__,
        "scheduler_class": type(scheduler).__name__,
        "scheduler_config": json.dumps(
            {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}, default=str, sort_keys=True
        ),
        "schedule_family": schedule.family,
        **s.to_dict(),
        "num_inference_steps": steps,
        "output_type": str(output_type),
        "terminal_timestep": float(t_terminal),
        "alpha_T": a_T,
        "sigma_T": b_T,
        "terminal_snr_db": snr_db,
        "has_terminal_signal": bool(schedule.has_terminal_signal),
        "latent_dims": ",".join(layout.dims),
        "init_noise_sigma": float(record.get("init_noise_sigma", 1.0)),
    }
    return FreeInitResult(
        latents=clean, frames=frames, iterations=iterations, layout=layout, schedule=schedule, settings=settings
    )
