"""The checks :func:`freeinit_lab.engine.loop.freeinit` runs before any model runs, and what they resolve.

:func:`plan_call` validates the pipeline, the call arguments and the scheduler against FreeInit's needs, with
errors that say what to pass instead, and returns a :class:`CallPlan`: everything the pass loop needs.
"""

from __future__ import annotations

import functools
import inspect
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from freeinit_lab.core.reinit import FreeInitSettings
from freeinit_lab.core.schedules import NoiseSchedule, get_schedule
from freeinit_lab.hooks.layouts import LatentLayout, get_layout, require_pipeline_instance

__all__ = ["CallPlan", "FreeInitNoGapWarning", "plan_call", "resolve_num_inference_steps"]


class FreeInitNoGapWarning(UserWarning):
    """The pipeline's training ``z_T`` carries no signal (zero terminal SNR, flow matching): no gap to close."""


def _call_parameters(pipe: Any) -> Mapping[str, inspect.Parameter]:
    call = getattr(pipe, "__call__", None)
    if call is None:
        raise TypeError(f"{type(pipe).__name__} is not callable; pass a diffusers pipeline instance.")
    return inspect.signature(call).parameters


#: output types every diffusers video pipeline (and TinyVideoPipeline) post-processes to
OUTPUT_TYPES = ("np", "pt", "pil", "latent")

_FORCES_ONE = re.compile(r"^\s*num_videos_per_prompt\s*=\s*1\s*(#.*)?$", re.M)


@functools.lru_cache(maxsize=64)
def _forces_one_video_per_prompt(cls: type) -> bool:
    """Whether ``cls.__call__`` overrides ``num_videos_per_prompt`` with 1 (diffusers' AnimateDiff, CogVideoX)."""
    for klass in cls.__mro__:  # the class itself may be a probe's per-instance subclass: read the real one
        fn = vars(klass).get("__call__")
        if fn is None:
            continue
        try:
            src = inspect.getsource(inspect.unwrap(fn))
        except (OSError, TypeError):
            continue
        return bool(_FORCES_ONE.search(src))
    return False


def _effective_batch(call_kwargs: Mapping[str, Any], params: Mapping[str, inspect.Parameter],
                     pipe: Any = None) -> int | None:
    """Batch size the pipeline will sample, when it can be read from the call arguments; else None."""
    prompt = call_kwargs.get("prompt")
    if isinstance(prompt, str):
        n = 1
    elif isinstance(prompt, (list, tuple)):
        n = len(prompt)
    elif isinstance(call_kwargs.get("prompt_embeds"), torch.Tensor):
        n = int(call_kwargs["prompt_embeds"].shape[0])
    elif isinstance(call_kwargs.get("batch_size"), int):  # unconditional pipelines
        n = int(call_kwargs["batch_size"])
    else:
        return None
    per = call_kwargs.get("num_videos_per_prompt")
    if per is None and "num_videos_per_prompt" in params:
        per = params["num_videos_per_prompt"].default
    if per is None or per is inspect.Parameter.empty:
        per = 1
    if pipe is not None and _forces_one_video_per_prompt(type(pipe)):
        per = 1
    return n * int(per)


def _check_generator(generator: Any, batch: int | None, pipe: Any = None) -> None:
    if isinstance(generator, (list, tuple)):
        if not all(isinstance(g, torch.Generator) for g in generator):
            raise TypeError("generator must be a torch.Generator or a list of them (one per video in the batch).")
        if batch is not None and len(generator) != batch:
            if pipe is not None and _forces_one_video_per_prompt(type(pipe)):
                counted = (f"one per prompt: {type(pipe).__name__} makes one video per prompt whatever "
                           "num_videos_per_prompt says")
            else:
                counted = "prompts x num_videos_per_prompt"
            raise ValueError(
                f"Got {len(generator)} generators for a batch of {batch} videos ({counted}); "
                f"pass exactly {batch} generators, one per video, or a single torch.Generator."
            )
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}.")


def _check_latents(pipe: Any, layout: LatentLayout, latents: Any) -> None:
    """Initial latents the pipeline can sample from: a finite tensor in the dtype its denoiser runs in."""
    if not isinstance(latents, torch.Tensor):
        raise TypeError(f"latents must be a torch.Tensor, got {type(latents).__name__}.")
    if not latents.is_floating_point():
        raise TypeError(f"latents must be a floating-point tensor, got {latents.dtype}.")
    bad = int((~torch.isfinite(latents)).sum())
    if bad:
        raise ValueError(
            f"the initial latents hold {bad} non-finite value(s) (NaN or inf); every pass would diverge. Pass finite "
            "latents, or leave latents=None to draw them from the generator."
        )
    dtypes = {p.dtype for m in layout.get_denoisers(pipe) for p in m.parameters() if p.is_floating_point()}
    if len(dtypes) == 1 and latents.dtype not in dtypes:
        (model,) = dtypes
        name = str(model).replace("torch.", "")
        raise TypeError(
            f"latents are {str(latents.dtype).replace('torch.', '')} but {type(pipe).__name__}'s denoiser runs in "
            f"{name}; pass latents.to(torch.{name}) (or move the pipeline: pipe.to(dtype=...))."
        )


@dataclass
class CallPlan:
    """A FreeInit run, resolved before any model runs."""

    settings: FreeInitSettings
    layout: LatentLayout
    params: Mapping[str, inspect.Parameter]
    #: arguments passed on to every pipeline call (without generator, latents, output_type, num_inference_steps)
    call_kwargs: dict[str, Any]
    generator: Any
    user_latents: torch.Tensor | None
    output_type: Any
    steps: int
    steps_per_pass: list[int]
    schedule: NoiseSchedule
    t_terminal: float
    a_T: float
    b_T: float


def resolve_num_inference_steps(pipe: Any, num_inference_steps: int | None = None, *,
                                fallback: int | None = None) -> int:
    """The step count a study samples with: ``num_inference_steps`` when given, else the pipeline's stored sampler
    (``pipe.default_num_inference_steps``: the model folder's ``sampler.json`` for the embedded pipelines), else
    ``fallback``; a ``ValueError`` naming the fix when none of them gives one, or when the count is below 1."""
    steps = num_inference_steps
    if steps is None:
        steps = getattr(pipe, "default_num_inference_steps", None)
    if steps is None:
        steps = fallback
    if steps is None:
        raise ValueError(f"{type(pipe).__name__} stores no default sampler (no default_num_inference_steps): "
                         "pass num_inference_steps")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"num_inference_steps={steps} must be >= 1.")
    return steps


def plan_call(pipe: Any, s: FreeInitSettings, schedule: NoiseSchedule | Any | None, call_kwargs: Mapping[str, Any],
              *, stacklevel: int = 3) -> CallPlan:
    """Check ``pipe`` and the call arguments of :func:`~freeinit_lab.engine.loop.freeinit`; resolve the schedule.

    Raises
    ------
    ValueError, TypeError
        See :func:`~freeinit_lab.engine.loop.freeinit`.

    Warns
    -----
    FreeInitNoGapWarning
        When the scheduler's training ``z_T`` carries no signal.
    """
    call_kwargs = dict(call_kwargs)
    require_pipeline_instance(pipe, "freeinit")
    layout = get_layout(pipe)
    params = _call_parameters(pipe)
    missing = [p for p in ("latents", "output_type") if p not in params]
    if missing:
        raise TypeError(
            f"{type(pipe).__name__}.__call__ has no {' / '.join(missing)} argument; freeinit runs each pass as "
            "pipe(..., latents=..., output_type='latent'). Use a pipeline that accepts both, or wrap yours in one "
            "that does."
        )
    if getattr(pipe, "free_init_enabled", False):
        raise ValueError(
            "diffusers' own FreeInit is enabled on this pipeline, so every call would already run several passes; "
            "call pipe.disable_free_init() first."
        )
    if "return_dict" in call_kwargs:
        raise TypeError("freeinit returns a FreeInitResult; drop the return_dict argument.")
    unknown = [k for k in call_kwargs if k not in params and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())]
    if unknown:
        raise TypeError(f"{type(pipe).__name__}.__call__ got unexpected argument(s) {unknown}.")
    generator = call_kwargs.pop("generator", None)
    batch = _effective_batch(call_kwargs, params, pipe)
    if batch == 0:
        raise ValueError(
            "nothing to sample: the batch is empty (an empty prompt list, batch_size=0 or num_videos_per_prompt=0); "
            "pass at least one prompt (or batch_size >= 1)."
        )
    _check_generator(generator, batch, pipe)
    user_latents = call_kwargs.pop("latents", None)
    if user_latents is not None:
        _check_latents(pipe, layout, user_latents)
    default_output = params["output_type"].default
    output_type = call_kwargs.pop("output_type", None if default_output is inspect.Parameter.empty else default_output)
    if output_type is not None and output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type={output_type!r} is not one the pipeline can return; use one of {OUTPUT_TYPES}.")
    steps = call_kwargs.pop("num_inference_steps", params["num_inference_steps"].default
                            if "num_inference_steps" in params else None)
    if steps is inspect.Parameter.empty:
        steps = None
    try:
        steps = resolve_num_inference_steps(pipe, steps)
    except ValueError as err:
        if steps is None:
            raise TypeError("pass num_inference_steps explicitly: the pipeline's signature has no default for it.") from err
        raise
    custom = [k for k in ("timesteps", "sigmas") if call_kwargs.get(k) is not None]
    if s.fast_sampling and custom:
        raise ValueError(
            f"fast_sampling sets num_inference_steps per pass, but {' and '.join(custom)} override it; drop "
            f"{' / '.join(custom)} or use fast_sampling=False."
        )
    steps_per_pass = s.steps_per_pass(steps)

    if schedule is None:
        scheduler = layout.get_scheduler(pipe)
        schedule = get_schedule(scheduler)
        cfg = dict(getattr(scheduler, "config", {}) or {})
        if schedule.family != "flow" and (cfg.get("use_flow_sigmas") or cfg.get("prediction_type") == "flow_prediction"):
            # e.g. Wan's UniPCMultistepScheduler(use_flow_sigmas=True): it carries DDPM betas it never uses
            shift = cfg.get("flow_shift", 1.0)
            raise ValueError(
                f"{type(scheduler).__name__} samples a flow-matching model (use_flow_sigmas / flow_prediction), "
                "but its forward process was read as DDPM. Pass the flow schedule explicitly: "
                "schedule=NoiseSchedule.from_scheduler(FlowMatchEulerDiscreteScheduler(shift="
                f"{shift})) (freeinit_lab.schedules.NoiseSchedule, diffusers.FlowMatchEulerDiscreteScheduler)."
            )
    else:
        schedule = NoiseSchedule.from_scheduler(schedule)
    t_terminal = schedule.terminal_timestep
    a_T, b_T = (float(v) for v in schedule.coefficients(t_terminal))
    if s.num_iters > 1 and not schedule.has_terminal_signal:
        warnings.warn(
            f"{type(pipe).__name__} uses {schedule.scheduler_class or schedule.family} whose training z_T carries no "
            f"signal (a_T = {a_T:.3g}, terminal SNR {schedule.terminal_snr:.3g}): inference already starts from the "
            "distribution the model was trained on, so there is no initialization gap for FreeInit to close. The "
            "low-pass mix below only keeps the low frequencies of pure noise (renoise='same': of the first "
            "initial noise).",
            FreeInitNoGapWarning,
            stacklevel=stacklevel,
        )
    return CallPlan(
        settings=s, layout=layout, params=params, call_kwargs=call_kwargs, generator=generator,
        user_latents=user_latents, output_type=output_type, steps=steps, steps_per_pass=steps_per_pass,
        schedule=schedule, t_terminal=t_terminal, a_T=a_T, b_T=b_T,
    )
