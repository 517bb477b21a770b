"""Reading what pipelines and schedulers return, in one place.

diffusers returns a pipeline's output as an ``*Output`` dataclass (``.frames``) or, with ``return_dict=False``,
a tuple; a scheduler's step as a dataclass with ``prev_sample`` (and often ``pred_original_sample``) or a tuple in
the dataclass's field order; ``prepare_latents`` as a tensor or a tuple starting with one.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from typing import Any, Callable

import torch

__all__ = ["read_pipeline_output", "read_sample", "read_step_output", "step_signature"]


def read_pipeline_output(out: Any) -> Any:
    """The first output of a pipeline call: ``out[0]`` of a tuple, ``out.frames`` of an output object, else ``out``."""
    if isinstance(out, (tuple, list)):
        return out[0]
    return getattr(out, "frames", out)


def read_sample(out: Any, what: str = "a scheduler output") -> torch.Tensor:
    """The latent tensor in ``out``: a tensor, ``out.prev_sample``, or the first item of a tuple.

    Raises
    ------
    TypeError
        Naming ``what`` and the type found.
    """
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "prev_sample"):
        return out.prev_sample
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(
        f"Cannot find the latent in {what} of type {type(out).__name__}: expected a tensor, an output with "
        "prev_sample, or a tuple starting with a tensor."
    )


@functools.lru_cache(maxsize=64)
def _tuple_x0_index(scheduler_cls: type) -> int | None:
    """Position of ``pred_original_sample`` in the tuple a scheduler returns with ``return_dict=False``.

    Read from the scheduler module's own ``*Output`` dataclass (diffusers' tuple outputs list its fields in
    order); None when the module defines none with that field.
    """
    from diffusers.utils import BaseOutput

    module = sys.modules.get(scheduler_cls.__module__)
    for obj in vars(module).values() if module is not None else ():
        if (
            isinstance(obj, type)
            and issubclass(obj, BaseOutput)
            and obj.__module__ == scheduler_cls.__module__
            and dataclasses.is_dataclass(obj)
        ):
            names = [f.name for f in dataclasses.fields(obj)]
            if "pred_original_sample" in names:
                return names.index("pred_original_sample")
    return None


def read_step_output(scheduler: Any, out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(prev_sample, pred_original_sample or None)`` from any scheduler step output."""
    if isinstance(out, torch.Tensor):
        return out, None
    if hasattr(out, "prev_sample"):
        x0 = getattr(out, "pred_original_sample", None)
        return out.prev_sample, x0 if isinstance(x0, torch.Tensor) else None
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        index = _tuple_x0_index(type(scheduler))
        x0 = out[index] if index is not None and index < len(out) else None
        if isinstance(x0, torch.Tensor) and x0.shape == out[0].shape:
            return out[0], x0
        return out[0], None
    raise TypeError(f"LatentProbe: cannot read a scheduler output of type {type(out).__name__}")


_STEP_ARGS = ("model_output", "timestep", "sample")


def step_signature(sched: Any, current: Callable) -> inspect.Signature:
    """The signature to read ``scheduler.step``'s arguments with.

    ``current`` is what ``sched.step`` is now; when someone else replaced it with a wrapper that takes
    ``*args, **kwargs`` (``lambda *a, **k: orig(*a, **k)``) its own signature names nothing, so the arguments are
    read with the signature of the scheduler class's ``step``, where they end up.
    """
    candidates = [current, getattr(type(sched), "step", None)]
    for fn in candidates:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        params = list(sig.parameters.values())
        if fn is candidates[1] and params and params[0].name == "self":
            sig = sig.replace(parameters=params[1:])
        if all(a in sig.parameters for a in _STEP_ARGS):
            return sig
    return inspect.signature(current)
