"""Latent layouts of diffusers video pipelines: one small, documented adapter table keyed by pipeline class.

Video pipelines disagree on where the frame axis of a latent lives. The AnimateDiff family, ModelScope
(``TextToVideoSDPipeline``), Wan, HunyuanVideo, Mochi and Latte use (batch, channel, frame, height, width);
CogVideoX and Stable Video Diffusion use (batch, frame, channel, height, width). freeinit_lab works in the
canonical order ``VIDEO_DIMS = ("batch", "channel", "frame", "height", "width")`` (spectral kernels transform
the last three axes), so every pipeline latent is permuted once, on capture, by its :class:`LatentLayout`, and
permuted back before it is handed to the pipeline again.

A layout also says which attribute holds the denoiser (to count or time its evaluations and read its latent
channel count), which holds the scheduler, and how the final clean latent can be captured while the pipeline
decodes it (so a run that must return decoded frames needs no second pass and no decoder of our own):

``"decode_latents"``
    the pipeline passes the final latent as the first argument of ``pipe.decode_latents`` (AnimateDiff,
    ModelScope, SVD); exact even when a ``callback_on_step_end`` edits the latent after the last step.
``"scheduler_step"``
    the final latent is the sample returned by the last ``scheduler.step`` call of the run (pipelines
    that decode inline, or that trim the latent before decoding, like CogVideoX 1.5's padding frames), or the
    latents a ``callback_on_step_end`` returns after it, when the caller's callback is wrapped with
    :func:`follow_callback_latents` (the latent the pipeline goes on with).

The table
---------
======================================  ====================================  ===========  ================  ======
pipeline class                          latent dims                           denoiser     final latent      tested
======================================  ====================================  ===========  ================  ======
AnimateDiffPipeline                     batch, channel, frame, height, width  unet         decode_latents    yes
AnimateDiffSDXLPipeline                 batch, channel, frame, height, width  unet         decode_latents    no
AnimateDiffControlNetPipeline           batch, channel, frame, height, width  unet         decode_latents    no
AnimateDiffSparseControlNetPipeline     batch, channel, frame, height, width  unet         decode_latents    no
AnimateDiffPAGPipeline                  batch, channel, frame, height, width  unet         decode_latents    no
TextToVideoSDPipeline                   batch, channel, frame, height, width  unet         decode_latents    yes
CogVideoXPipeline                       batch, frame, channel, height, width  transformer  scheduler_step    yes
StableVideoDiffusionPipeline            batch, frame, channel, height, width  unet         decode_latents    no
WanPipeline                             batch, channel, frame, height, width  transformer  scheduler_step    yes
HunyuanVideoPipeline                    batch, channel, frame, height, width  transformer  scheduler_step    no
MochiPipeline                           batch, channel, frame, height, width  transformer  scheduler_step    no
TinyVideoPipeline                       batch, channel, frame, height, width  unet, guide  decode_latents    no
======================================  ====================================  ===========  ================  ======

``TinyVideoPipeline`` is freeinit_lab's embedded default (:func:`freeinit_lab.load_default_pipeline`); its
``guide`` (an autoguidance network, present only in folders that store one) is counted as a second denoiser.
"tested" means freeinit_lab's test suite runs that class (a tiny random-weight build); the other rows were
read from diffusers 0.42's source. Pipelines whose ``latents=`` argument is not the initial noise (video-to-video,
image-to-video pipelines that concatenate image latents inside ``prepare_latents``) or that pack latents into
token sequences (LTX-Video) are deliberately absent.

Registering your own pipeline
-----------------------------
>>> from freeinit_lab.hooks.layouts import LatentLayout, register_layout
>>> register_layout("MyVideoPipeline", LatentLayout(
...     dims=("batch", "frame", "channel", "height", "width"), denoiser="transformer",
...     final_latent="scheduler_step"))  # doctest: +SKIP

A subclass of a registered pipeline class uses its parent's layout unless it is registered itself.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

import torch

from freeinit_lab.core.dims import VIDEO_DIMS as _VIDEO_DIMS
from freeinit_lab.hooks.outputs import read_sample, step_signature
from freeinit_lab.hooks.patching import patch

__all__ = [
    "LatentLayout",
    "LAYOUTS",
    "register_layout",
    "get_layout",
    "get_scheduler",
    "resolve_layout",
    "has_scheduler",
    "get_denoisers",
    "denoiser_channels",
    "UnknownPipelineError",
    "patch_attribute",
    "capture_final_latent",
    "follow_callback_latents",
    "check_channel_axis",
    "require_pipeline_instance",
]

FinalLatent = Literal["decode_latents", "scheduler_step"]


class UnknownPipelineError(KeyError, ValueError):
    """No latent layout is registered for a pipeline class (or any of its base classes)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class LatentLayout:
    """How one pipeline class lays out its latents and where its parts live.

    Parameters
    ----------
    dims : tuple of str
        The pipeline's latent axes in tensor order: a permutation of
        ``("batch", "channel", "frame", "height", "width")``.
    denoiser : str or tuple of str
        Attribute name(s) of the denoiser module(s) (``"unet"``, ``"transformer"``; Wan 2.2 has a second expert
        ``"transformer_2"``). Missing or ``None`` attributes are skipped. Everything in freeinit_lab that counts,
        times or reads the config of a pipeline's denoiser (its latent channel count for
        :func:`check_channel_axis`) reads it from these attributes (:func:`get_denoisers`).
    scheduler : str
        Attribute name of the scheduler (diffusers' pipelines: ``"scheduler"``). Everything in freeinit_lab that
        reads, wraps or steps a pipeline's scheduler reads it from this attribute (:func:`get_scheduler`).
    final_latent : {"decode_latents", "scheduler_step"}
        How to capture the final clean latent while the pipeline decodes (see the module docstring).
    note : str
        Free text shown in error messages and docs.
    """

    dims: tuple[str, ...] = _VIDEO_DIMS
    denoiser: str | tuple[str, ...] = "unet"
    scheduler: str = "scheduler"
    final_latent: FinalLatent = "decode_latents"
    note: str = ""
    _to_canonical: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _from_canonical: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dims = tuple(self.dims)
        if sorted(dims) != sorted(_VIDEO_DIMS) or len(dims) != len(_VIDEO_DIMS):
            raise ValueError(
                f"LatentLayout.dims must be a permutation of {_VIDEO_DIMS}, got {dims}. Name each axis of the "
                "pipeline's latent tensor, in order."
            )
        if self.final_latent not in ("decode_latents", "scheduler_step"):
            raise ValueError(
                f"LatentLayout.final_latent must be 'decode_latents' or 'scheduler_step', got {self.final_latent!r}."
            )
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "_to_canonical", tuple(dims.index(d) for d in _VIDEO_DIMS))
        object.__setattr__(self, "_from_canonical", tuple(_VIDEO_DIMS.index(d) for d in dims))

    @property
    def is_canonical(self) -> bool:
        """Whether the pipeline already uses (batch, channel, frame, height, width)."""
        return self.dims == _VIDEO_DIMS

    @property
    def denoisers(self) -> tuple[str, ...]:
        """The denoiser attribute names as a tuple."""
        return (self.denoiser,) if isinstance(self.denoiser, str) else tuple(self.denoiser)

    def to_canonical(self, x: torch.Tensor) -> torch.Tensor:
        """Permute a pipeline latent to (batch, channel, frame, height, width) (a view, no copy)."""
        self._check_ndim(x)
        return x if self.is_canonical else x.permute(self._to_canonical)

    def from_canonical(self, x: torch.Tensor) -> torch.Tensor:
        """Permute a canonical (batch, channel, frame, height, width) latent to the pipeline's order (contiguous)."""
        self._check_ndim(x)
        return x if self.is_canonical else x.permute(self._from_canonical).contiguous()

    def canonical_shape(self, shape: tuple[int, ...] | torch.Size) -> tuple[int, ...]:
        """The canonical shape of a latent with pipeline-order ``shape``."""
        return tuple(int(shape[i]) for i in self._to_canonical)

    def batch_axis(self) -> int:
        """Position of the batch axis in the pipeline's tensor order."""
        return self.dims.index("batch")

    def get_scheduler(self, pipe: Any) -> Any:
        """The pipeline's scheduler (``getattr(pipe, self.scheduler)``), with an error naming the attribute."""
        sched = getattr(pipe, self.scheduler, None)
        if sched is None:
            raise AttributeError(
                f"{type(pipe).__name__} has no scheduler at attribute {self.scheduler!r}; fix the layout's "
                "`scheduler` field via freeinit_lab.register_layout."
            )
        return sched

    def get_denoisers(self, pipe: Any) -> list[torch.nn.Module]:
        """The pipeline's denoiser modules that are present (``None`` components are skipped)."""
        mods = [getattr(pipe, name, None) for name in self.denoisers]
        mods = [m for m in mods if isinstance(m, torch.nn.Module)]
        if not mods:
            raise AttributeError(
                f"{type(pipe).__name__} has no denoiser module at {self.denoisers}; fix the layout's `denoiser` "
                "field via freeinit_lab.register_layout."
            )
        return mods

    def _check_ndim(self, x: torch.Tensor) -> None:
        if x.ndim != len(self.dims):
            raise ValueError(f"Expected a {len(self.dims)}-D latent {self.dims}, got shape {tuple(x.shape)}.")


_BCFHW = ("batch", "channel", "frame", "height", "width")
_BFCHW = ("batch", "frame", "channel", "height", "width")

#: The adapter table, keyed by pipeline class name. Extend it with :func:`register_layout`.
LAYOUTS: dict[str, LatentLayout] = {
    "AnimateDiffPipeline": LatentLayout(_BCFHW, "unet", final_latent="decode_latents", note="tested"),
    "AnimateDiffSDXLPipeline": LatentLayout(_BCFHW, "unet", final_latent="decode_latents"),
    "AnimateDiffControlNetPipeline": LatentLayout(_BCFHW, "unet", final_latent="decode_latents"),
    "AnimateDiffSparseControlNetPipeline": LatentLayout(_BCFHW, "unet", final_latent="decode_latents"),
    "AnimateDiffPAGPipeline": LatentLayout(_BCFHW, "unet", final_latent="decode_latents"),
    "TextToVideoSDPipeline": LatentLayout(_BCFHW, "unet", final_latent="decode_latents", note="tested"),
    "CogVideoXPipeline": LatentLayout(
        _BFCHW,
        "transformer",
        final_latent="scheduler_step",
        note="tested; CogVideoX 1.5 pads latent frames, which decode_latents would not see",
    ),
    "StableVideoDiffusionPipeline": LatentLayout(_BFCHW, "unet", final_latent="decode_latents"),
    "WanPipeline": LatentLayout(
        _BCFHW, ("transformer", "transformer_2"), final_latent="scheduler_step", note="tested; Wan 2.2 has two experts"
    ),
    "HunyuanVideoPipeline": LatentLayout(_BCFHW, "transformer", final_latent="scheduler_step"),
    "MochiPipeline": LatentLayout(_BCFHW, "transformer", final_latent="scheduler_step"),
    "TinyVideoPipeline": LatentLayout(_BCFHW, ("unet", "guide"), final_latent="decode_latents",
                                      note="embedded default; its autoguidance network is a second denoiser"),
}


def register_layout(pipeline_class: type | str, layout: LatentLayout, *, overwrite: bool = False) -> None:
    """Add a pipeline class to the adapter table.

    Parameters
    ----------
    pipeline_class : type or str
        The pipeline class or its ``__name__``.
    layout : LatentLayout
        Its latent layout and component names.
    overwrite : bool
        Replace an existing entry; without it re-registering a known class raises, so a typo cannot silently
        change a built-in adapter.
    """
    if not isinstance(layout, LatentLayout):
        raise TypeError(f"layout must be a freeinit_lab.layouts.LatentLayout, got {type(layout).__name__}.")
    name = pipeline_class if isinstance(pipeline_class, str) else pipeline_class.__name__
    if name in LAYOUTS and not overwrite and LAYOUTS[name] != layout:
        raise ValueError(f"{name} already has a layout ({LAYOUTS[name]}); pass overwrite=True to replace it.")
    LAYOUTS[name] = layout


def get_layout(pipe: Any) -> LatentLayout:
    """The :class:`LatentLayout` of a pipeline instance or class (its own entry, else its nearest base class's).

    Raises
    ------
    UnknownPipelineError
        If neither the class nor any base class is registered; the message shows how to register one.
    """
    cls = pipe if isinstance(pipe, type) else type(pipe)
    for klass in cls.__mro__:
        if klass.__name__ in LAYOUTS:
            return LAYOUTS[klass.__name__]
    raise UnknownPipelineError(
        f"freeinit_lab has no latent layout for {cls.__name__}. Known pipelines: {', '.join(sorted(LAYOUTS))}. "
        "If its `latents=` argument is the initial Gaussian noise, register it, e.g.\n"
        "    from freeinit_lab.hooks.layouts import LatentLayout, register_layout\n"
        f"    register_layout({cls.__name__!r}, LatentLayout(dims=('batch', 'channel', 'frame', 'height', "
        "'width'), denoiser='unet', final_latent='scheduler_step'))\n"
        "with `dims` naming the axes of the pipeline's latent tensor in order (CogVideoX-style pipelines use "
        "('batch', 'frame', 'channel', 'height', 'width')) and `denoiser` the attribute holding the UNet or "
        "transformer."
    )


#: The layout assumed for a pipeline with none registered when only its scheduler or denoiser is needed:
#: diffusers' attribute names (the scheduler at ``scheduler``, the denoiser at whichever of ``unet``,
#: ``transformer``, ``prior``, ``denoiser`` the pipeline has).
_UNREGISTERED = LatentLayout(denoiser=("unet", "transformer", "prior", "denoiser"))


def resolve_layout(pipe: Any, layout: LatentLayout | None = None) -> LatentLayout:
    """The layout to read ``pipe`` with: ``layout`` if given, else the pipeline's registered layout, else diffusers'
    attribute names (:data:`_UNREGISTERED`: the scheduler at ``scheduler``, the first denoiser name it has)."""
    if layout is not None:
        return layout
    try:
        return get_layout(pipe)
    except UnknownPipelineError:
        return _UNREGISTERED


def get_scheduler(pipe: Any, layout: LatentLayout | None = None) -> Any:
    """The scheduler of a pipeline instance, read from the attribute its layout names (``LatentLayout.scheduler``).

    The one way freeinit_lab reaches a pipeline's scheduler: a pipeline registered with
    ``LatentLayout(scheduler="sampler")`` is probed, sampled and analysed with ``pipe.sampler``, also when
    ``pipe.scheduler`` holds something else.

    Parameters
    ----------
    pipe
        A pipeline instance.
    layout : LatentLayout, optional
        The layout to read it with; default the pipeline's registered layout (:func:`get_layout`), or the
        attribute ``"scheduler"`` (diffusers' name) for a pipeline with none registered.

    Raises
    ------
    AttributeError
        Nothing at that attribute; the message names it and the fix.

    Examples
    --------
    >>> from freeinit_lab.testing import tiny_animatediff_pipeline
    >>> pipe = tiny_animatediff_pipeline(seed=0)
    >>> get_scheduler(pipe) is pipe.scheduler
    True
    """
    return resolve_layout(pipe, layout).get_scheduler(pipe)


def get_denoisers(pipe: Any, layout: LatentLayout | None = None) -> list[torch.nn.Module]:
    """The denoiser modules of a pipeline instance, read from the attribute(s) its layout names
    (``LatentLayout.denoiser``).

    The one way freeinit_lab reaches a pipeline's denoiser: a pipeline registered with
    ``LatentLayout(denoiser="model")`` is counted, timed and checked through ``pipe.model``, also when
    ``pipe.unet`` holds something else.

    Parameters
    ----------
    pipe
        A pipeline instance.
    layout : LatentLayout, optional
        The layout to read them with; default the pipeline's registered layout (:func:`get_layout`), or for a
        pipeline with none registered diffusers' names ``unet``, ``transformer`` (and ``prior``, ``denoiser``).

    Raises
    ------
    AttributeError
        No module at any of those attributes; the message names them and the fix.

    Examples
    --------
    >>> from freeinit_lab.testing import tiny_animatediff_pipeline
    >>> pipe = tiny_animatediff_pipeline(seed=0)
    >>> get_denoisers(pipe) == [pipe.unet]
    True
    """
    return resolve_layout(pipe, layout).get_denoisers(pipe)


def denoiser_channels(pipe: Any, layout: LatentLayout | None = None) -> int | None:
    """The latent channel count a pipeline's denoiser produces (its ``config.out_channels``), or None if unknown.

    Read from the attribute(s) the layout names (``LatentLayout.denoiser``; ``layout`` as in
    :func:`get_denoisers`), the first whose ``config`` declares a count; None when none does (frames and channels
    are never guessed from sizes).

    Examples
    --------
    >>> from freeinit_lab.testing import tiny_animatediff_pipeline
    >>> denoiser_channels(tiny_animatediff_pipeline(seed=0))
    4
    """
    return _denoiser_config_channels(pipe, layout)[0]


def _declared_count(config: Any, key: str) -> int | None:
    value = getattr(config, key, None) if config is not None else None
    if value is None and isinstance(config, dict):
        value = config.get(key)
    return int(value) if isinstance(value, numbers.Integral) and value > 0 else None


def _denoiser_config_channels(pipe: Any, layout: LatentLayout | None = None) -> tuple[int | None, int | None]:
    """``(out_channels, in_channels)`` of the first denoiser whose config declares ``out_channels`` (each None when
    not declared)."""
    for name in resolve_layout(pipe, layout).denoisers:
        config = getattr(getattr(pipe, name, None), "config", None)
        out = _declared_count(config, "out_channels")
        if out is not None:
            return out, _declared_count(config, "in_channels")
    return None, None


def has_scheduler(obj: Any) -> bool:
    """Whether ``obj`` is an instance holding a scheduler where :func:`get_scheduler` reads it.

    Tells a pipeline apart from a factory that builds one (both are callable).
    """
    if isinstance(obj, type):
        return False
    try:
        get_scheduler(obj)
    except AttributeError:
        return False
    return True


def require_pipeline_instance(pipe: Any, who: str) -> None:
    """Refuse a pipeline *class* where an instance is needed, naming the fix.

    Without this a class fails far from the mistake: ``AnimateDiffPipeline.free_init_enabled`` is a property
    object (truthy) on the class, and a class has no ``scheduler`` attribute to read.
    """
    if isinstance(pipe, type):
        raise TypeError(
            f"{who}: {pipe.__name__} is a class; pass a pipeline instance, e.g. "
            f"{pipe.__name__}.from_pretrained(...) or one built from its components."
        )


def check_channel_axis(pipe: Any, layout: LatentLayout | tuple[str, ...], shape: tuple[int, ...] | torch.Size,
                       who: str, fix: str | None = None) -> None:
    """Refuse a layout whose ``"channel"`` axis does not hold the denoiser's latent channels.

    A layout that swaps frames and channels would make every spectral step (FreeInit's 3-D low-pass, band power,
    a probe's record) act on the wrong axes without any error. Only a channel count the denoiser declares
    (:func:`denoiser_channels`: ``config.out_channels`` of the module at the layout's ``denoiser`` attribute, or
    half of it for learned-variance models, i.e. unless the same config declares ``in_channels`` equal to
    ``out_channels``: such a denoiser returns as many channels as its latent has, so a layout naming an axis of
    half that size, e.g. 2 frames of a 4-channel latent, as ``"channel"`` is refused) is used; frames and channels
    are never guessed from sizes.

    Parameters
    ----------
    pipe
        The pipeline whose latents have ``shape``.
    layout
        The layout the caller is about to use: a :class:`LatentLayout`, or its ``dims`` (the denoiser is then
        read where the pipeline's registered layout says).
    shape
        A latent shape in the pipeline's own axis order.
    who
        The caller's name, for the message.
    fix
        How the caller's user gives the right axis order (default: registering the layout).
    """
    dims = tuple(getattr(layout, "dims", layout))
    channels, in_channels = _denoiser_config_channels(pipe, layout if isinstance(layout, LatentLayout) else None)
    if channels is None or len(shape) != len(dims):
        return
    got = int(shape[dims.index("channel")])
    learned_variance = channels % 2 == 0 and in_channels != channels  # its output holds a variance beside the mean
    if got == channels or (learned_variance and got == channels // 2):
        return
    fix = fix or (
        f"Register the pipeline's real axis order, e.g. register_layout({type(pipe).__name__!r}, "
        "LatentLayout(dims=('batch', 'frame', 'channel', 'height', 'width'), ...), overwrite=True) "
        "(freeinit_lab.hooks.layouts)."
    )
    raise ValueError(
        f"{who}: with layout {dims} the latents {tuple(int(s) for s in shape)} of {type(pipe).__name__} "
        f"have {got} channels, but its denoiser works on {channels}; the layout names the wrong axis as 'channel', "
        f"so the frequency filter would run over the wrong axes. {fix}"
    )


@contextmanager
def patch_attribute(obj: Any, name: str, make_wrapper: Callable[[Callable], Callable]) -> Iterator[None]:
    """Temporarily replace ``obj.name`` by ``make_wrapper(original)`` as an *instance* attribute.

    The class is never touched, other instances are unaffected, and the previous state (including an instance
    attribute someone else installed) is restored in ``finally``, whatever happens inside the block. A thin
    context manager over :func:`freeinit_lab.hooks.patching.patch`, so patches of any origin nest and undo in any
    order.
    """
    handle = patch(obj, name, make_wrapper)
    try:
        yield
    finally:
        handle.remove()


def _step_sample(sig: inspect.Signature, args: tuple, kwargs: dict) -> Any:
    """The ``sample`` argument of a ``scheduler.step`` call (None when it cannot be read)."""
    if "sample" in kwargs:
        return kwargs["sample"]
    try:
        return sig.bind(*args, **kwargs).arguments.get("sample")
    except TypeError:
        return None


@contextmanager
def capture_final_latent(pipe: Any, layout: LatentLayout | None = None) -> Iterator[dict[str, Any]]:
    """Record the final clean latent of the pipeline call(s) made inside the block, without changing them.

    Yields a dict whose ``"latent"`` entry holds, after a call, a clone of the latent the pipeline would return
    with ``output_type="latent"`` (in the pipeline's own axis order), captured the way ``layout.final_latent``
    says. ``"latent"`` stays ``None`` when nothing was captured (``"decode_latents"`` with
    ``output_type="latent"``: use the returned tensor then).

    Examples
    --------
    >>> with capture_final_latent(pipe) as cap:  # doctest: +SKIP
    ...     frames = pipe(prompt, output_type="np").frames
    >>> cap["latent"].shape  # doctest: +SKIP
    """
    layout = get_layout(pipe) if layout is None else layout
    record: dict[str, Any] = {"latent": None}

    if layout.final_latent == "decode_latents":
        if not callable(getattr(pipe, "decode_latents", None)):
            raise AttributeError(
                f"{type(pipe).__name__} has no decode_latents method; register its layout with "
                "final_latent='scheduler_step'."
            )

        def make_wrapper(original: Callable) -> Callable:
            @functools.wraps(original)
            def decode_latents(*args: Any, **kwargs: Any) -> Any:
                latent = args[0] if args else kwargs["latents"]
                record["latent"] = latent.detach().clone()
                return original(*args, **kwargs)

            return decode_latents

        with patch_attribute(pipe, "decode_latents", make_wrapper):
            yield record
    else:
        scheduler = layout.get_scheduler(pipe)

        def make_wrapper(original: Callable) -> Callable:
            sig = step_signature(scheduler, original)

            @functools.wraps(original)
            def step(*args: Any, **kwargs: Any) -> Any:
                out = original(*args, **kwargs)
                latent = read_sample(out).detach()
                # schedulers compute in float32 (their alphas are float32) and pipelines that keep half-precision
                # latents (CogVideoX) cast the sample back to the dtype it came in with before they go on
                sample = _step_sample(sig, args, kwargs)
                if isinstance(sample, torch.Tensor) and sample.is_floating_point() and sample.dtype != latent.dtype:
                    latent = latent.to(sample.dtype)
                record["latent"] = latent.clone()
                return out

            return step

        with patch_attribute(scheduler, "step", make_wrapper):
            yield record


def follow_callback_latents(callback: Any, record: dict[str, Any]) -> Any:
    """``callback`` (a pipeline's ``callback_on_step_end``) for a call inside :func:`capture_final_latent`, made to
    keep ``record["latent"]`` at the latent the pipeline goes on with.

    diffusers' pipelines replace their latent by the ``"latents"`` a ``callback_on_step_end`` returns, after the
    scheduler step; the ``"scheduler_step"`` capture alone would keep the step's sample, so a callback that edits
    the latent at the last step would make the captured latent differ from the one the pipeline decodes (and
    from the one it returns with ``output_type="latent"``). The wrapper calls ``callback`` with the same arguments
    and returns its result unchanged; a :class:`diffusers.callbacks.PipelineCallback` (or
    ``MultiPipelineCallbacks``) stays one, with the same ``tensor_inputs``. ``None`` is returned as is.
    """
    if callback is None:
        return None

    def follow(pipeline: Any, step_index: Any, timestep: Any, callback_kwargs: Any) -> Any:
        out = callback(pipeline, step_index, timestep, callback_kwargs)
        if isinstance(out, dict) and isinstance(out.get("latents"), torch.Tensor):
            record["latent"] = out["latents"].detach().clone()
        return out

    try:
        from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
    except Exception:  # pragma: no cover - diffusers without callback classes
        return follow
    if not isinstance(callback, (PipelineCallback, MultiPipelineCallbacks)):
        return follow

    class _Following(MultiPipelineCallbacks):  # pipelines read `callback.tensor_inputs` of these classes
        def __init__(self) -> None:
            self.callbacks = [callback]

        @property
        def tensor_inputs(self) -> list[str]:
            return list(callback.tensor_inputs)

        def __call__(self, pipeline: Any, step_index: Any, timestep: Any, callback_kwargs: Any) -> Any:
            return follow(pipeline, step_index, timestep, callback_kwargs)

    return _Following()
