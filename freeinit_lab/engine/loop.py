"""FreeInit (Wu et al., arXiv 2312.07537) around any diffusers video pipeline, without modifying it.

FreeInit closes the *initialization gap*: at training time the noisiest latent ``z_T = a_T z_0 + b_T eps`` still
holds the clean video's lowest spatio-temporal frequencies (``a_T > 0``), while at inference ``z_T`` is pure
noise. FreeInit samples once, then repeatedly

1. diffuses the clean latent ``z_0`` of the previous pass to the last training timestep ``T`` with the first
   pass's initial noise ``eps`` (``renoise="same"``, as both public implementations do) or with fresh noise
   (``renoise="fresh"``, as the paper's text describes): ``z_T = a_T z_0 + b_T eps``;
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
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import numpy as np
import torch

from freeinit_lab.hooks.layouts import LatentLayout, capture_final_latent, get_layout, patch_attribute
from freeinit_lab.probes.probe import mark_iteration
from freeinit_lab.core.schedules import NoiseSchedule, get_schedule
from freeinit_lab.core.spectral import (
    apply_lowpass,
    lowpass_filter,
    reinit_noise,
    reinit_noise_variance_preserving,
    variance_preserving_weights,
)

__all__ = ["freeinit", "FreeInitResult", "FreeInitIteration", "fast_sampling_steps", "FreeInitNoGapWarning"]

_ITER_DIMS: tuple[str, ...] = ("iteration", "batch", "channel", "frame", "height", "width")


class FreeInitNoGapWarning(UserWarning):
    """The pipeline's training ``z_T`` carries no signal (zero terminal SNR, flow matching): no gap to close."""


def fast_sampling_steps(num_inference_steps: int, num_iters: int) -> list[int]:
    """Steps per pass of FreeInit's coarse-to-fine sampling: ``max(1, int(N / K * (i + 1)))`` for pass ``i``.

    >>> fast_sampling_steps(25, 5)
    [5, 10, 15, 20, 25]
    """
    return [max(1, int(num_inference_steps / num_iters * (i + 1))) for i in range(num_iters)]


# ----------------------------------------------------------------------------------------------------------------
# result objects
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class FreeInitIteration:
    """What happened in one FreeInit pass. Tensors are clones on CPU in the canonical order
    ``(batch, channel, frame, height, width)`` (use ``result.layout.from_canonical`` for the pipeline's order).

    Attributes
    ----------
    index
        Pass number; 0 is the plain sampling pass.
    num_inference_steps
        Sampler steps of this pass (fewer in early passes with ``fast_sampling=True``).
    initial_latent
        The latent handed to the pipeline as ``latents=`` (before the pipeline multiplies it by
        ``scheduler.init_noise_sigma``): Gaussian noise in pass 0, the reinitialised ``z'_T`` afterwards.
    clean_latent
        The pass's final clean latent ``z_0`` (what ``output_type="latent"`` returns).
    signal
        Signal part of ``initial_latent``: ``a_T * lowpass(z_0^{prev})`` (the low-pass weight is ``w_low`` with
        ``mix="variance_preserving"``); zeros in pass 0.
    noise
        Noise part: ``initial_latent - signal`` (``b_T * lowpass(eps) + highpass(eta)`` after pass 0). With
        ``signal`` it gives the band SNR of the latent inference actually starts from.
    num_denoiser_evals
        Forward calls of the denoiser module(s) in this pass (one per step with batched guidance).
    seconds, denoiser_seconds, own_seconds
        Wall time of the pass (pipeline call plus FreeInit's own work), the part spent inside the denoiser's
        forward, and the part spent in FreeInit's own code outside the pipeline call (filter, FFTs, forward
        diffusion, noise draws, records). Pass 0 also carries the argument checks and setup.
    frames
        Decoded output of this pass, if ``return_iteration_frames=True`` (the last pass's is also
        ``result.frames``).
    """

    index: int
    num_inference_steps: int
    initial_latent: torch.Tensor
    clean_latent: torch.Tensor
    signal: torch.Tensor
    noise: torch.Tensor
    num_denoiser_evals: int
    seconds: float = 0.0
    denoiser_seconds: float = 0.0
    own_seconds: float = 0.0
    frames: Any = None


@dataclass
class FreeInitResult:
    """Output of :func:`freeinit`.

    Attributes
    ----------
    latents
        Final clean latent of the last pass, in the pipeline's own axis order: the same tensor the pipeline
        returns with ``output_type="latent"``.
    frames
        The last pass decoded as the pipeline's own output holds it for the ``output_type`` passed (a PIL list,
        ``np.ndarray`` or tensor; ``latents`` again for ``output_type="latent"``).
    iterations
        One :class:`FreeInitIteration` per pass.
    layout
        The pipeline's :class:`~freeinit_lab.layouts.LatentLayout`.
    schedule
        The :class:`~freeinit_lab.schedules.NoiseSchedule` used for the forward diffusion.
    settings
        FreeInit settings and run metadata as plain values.
    """

    latents: torch.Tensor
    frames: Any
    iterations: list[FreeInitIteration]
    layout: LatentLayout
    schedule: NoiseSchedule
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def has_terminal_signal(self) -> bool:
        """Whether the model's training ``z_T`` carries signal, i.e. whether there is a gap to close."""
        return self.schedule.has_terminal_signal

    @property
    def num_denoiser_evals(self) -> int:
        """Denoiser forward calls over all passes."""
        return sum(it.num_denoiser_evals for it in self.iterations)

    @property
    def seconds(self) -> float:
        """Total wall time of all passes."""
        return sum(it.seconds for it in self.iterations)

    @property
    def denoiser_seconds(self) -> float:
        """Time spent inside the denoiser's forward over all passes."""
        return sum(it.denoiser_seconds for it in self.iterations)

    @property
    def own_seconds(self) -> float:
        """Time spent in FreeInit's own code (filter, FFTs, forward diffusion, noise draws, records)."""
        return sum(it.own_seconds for it in self.iterations)

    @property
    def overhead_share(self) -> float:
        """``own_seconds / seconds``: the share of the run FreeInit adds besides the pipeline calls."""
        total = self.seconds
        return self.own_seconds / total if total > 0 else 0.0

    def band_snr(self, num_bands: int = 6, *, edges: Sequence[float] | None = None):
        """Band-wise SNR of each pass's initial latent (``signal`` vs ``noise``), in dB.

        Uses :func:`freeinit_lab.snr.inference_band_snr` (its convention: ortho-normalised 3D FFT, radial bands
        on the filters' normalised frequency radius, powers averaged over batch and channels).

        Returns
        -------
        xarray.DataArray
            dims ``("iteration", "band")``; ``-inf`` dB where a pass starts from pure noise (pass 0, and every pass
            of a model without terminal signal).
        """
        import xarray as xr

        from freeinit_lab.core.snr import inference_band_snr

        per_pass = []
        for it in self.iterations:
            signal = it.signal if bool(it.signal.any()) else None
            per_pass.append(inference_band_snr(signal, it.noise, num_bands, edges=edges))
        out = xr.concat(per_pass, dim="iteration")
        out = out.assign_coords(iteration=np.arange(len(self.iterations)))
        out.attrs.update(per_pass[0].attrs)
        return out

    def to_xarray(self):
        """The per-pass latents as an :class:`xarray.Dataset`.

        Returns
        -------
        xarray.Dataset
            Variables ``initial_latent``, ``clean_latent``, ``signal``, ``noise`` with dims
            ``("iteration", "batch", "channel", "frame", "height", "width")``; coords ``iteration``,
            ``num_inference_steps`` and ``num_denoiser_evals`` along ``iteration``; run metadata (FreeInit
            settings, pipeline and scheduler class, ``a_T``/``b_T``, terminal SNR) in ``attrs`` as plain values
            that NetCDF and zarr round-trip.
        """
        import xarray as xr

        def stack(name: str) -> np.ndarray:
            return torch.stack([getattr(it, name) for it in self.iterations]).to(torch.float32).numpy()

        long_names = {
            "initial_latent": "latent the pass starts from (pipeline `latents=` input)",
            "clean_latent": "clean latent z_0 at the end of the pass",
            "signal": "signal part a_T * lowpass(z_0 of previous pass) of the initial latent",
            "noise": "noise part of the initial latent (initial_latent - signal)",
        }
        data_vars = {
            name: (_ITER_DIMS, stack(name), {"long_name": long, "units": "latent units"})
            for name, long in long_names.items()
        }
        coords = {
            "iteration": ("iteration", np.arange(len(self.iterations)), {"long_name": "FreeInit pass"}),
            "num_inference_steps": ("iteration", np.array([it.num_inference_steps for it in self.iterations])),
            "num_denoiser_evals": ("iteration", np.array([it.num_denoiser_evals for it in self.iterations])),
        }
        attrs = {k: (int(v) if isinstance(v, bool) else v) for k, v in self.settings.items() if v is not None}
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"FreeInitResult({s.get('pipeline_class')}, {len(self.iterations)} passes, method={s.get('method')!r}, "
            f"d_s={s.get('d_s')}, d_t={s.get('d_t')}, latents {tuple(self.latents.shape)}, "
            f"{self.num_denoiser_evals} denoiser evals, terminal SNR {s.get('terminal_snr_db'):.2f} dB)"
        )


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def _call_parameters(pipe: Any) -> Mapping[str, inspect.Parameter]:
    call = getattr(pipe, "__call__", None)
    if call is None:
        raise TypeError(f"{type(pipe).__name__} is not callable; pass a diffusers pipeline instance.")
    return inspect.signature(call).parameters


def _effective_batch(call_kwargs: Mapping[str, Any], params: Mapping[str, inspect.Parameter]) -> int | None:
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
    return n * int(per)


def _check_generator(generator: Any, batch: int | None) -> None:
    if isinstance(generator, (list, tuple)):
        if not all(isinstance(g, torch.Generator) for g in generator):
            raise TypeError("generator must be a torch.Generator or a list of them (one per video in the batch).")
        if batch is not None and len(generator) != batch:
            raise ValueError(
                f"Got {len(generator)} generators for a batch of {batch} videos (prompts x num_videos_per_prompt); "
                f"pass exactly {batch} generators, one per video, or a single torch.Generator."
            )
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}.")


def _throwaway_generator(generator: Any) -> Any:
    if isinstance(generator, (list, tuple)):
        return [torch.Generator(device=g.device).manual_seed(0) for g in generator]
    device = generator.device if isinstance(generator, torch.Generator) else "cpu"
    return torch.Generator(device=device).manual_seed(0)


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(
        f"prepare_latents returned {type(out).__name__}; freeinit expects the initial latent tensor (or a tuple "
        "starting with it)."
    )


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
    pipe: Any, generator: Any, record: dict[str, Any]
) -> Iterator[None]:
    """Wrap ``pipe.prepare_latents`` for one call: record its output (divided by ``init_noise_sigma``) and check
    user latents and generator lists before any denoising starts."""
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
            gen = bound.arguments.get("generator", generator)
            if isinstance(gen, (list, tuple)) and len(gen) != latent.shape[record["batch_axis"]]:
                raise ValueError(
                    f"Got {len(gen)} generators for a batch of {latent.shape[record['batch_axis']]} videos; pass "
                    "one torch.Generator per video, or a single one."
                )
            sigma0 = float(getattr(pipe.scheduler, "init_noise_sigma", 1.0))
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


def _validate_filter(method: str, d_s: float, d_t: float, order: float, legacy_ideal_threshold: bool) -> None:
    # lowpass_filter validates method, cut-offs in (0, 1] and order with messages that name the fix; the mask of
    # a tiny shape is cached and costs nothing.
    lowpass_filter((2, 2, 2), method, d_s, d_t, order, legacy_ideal_threshold=legacy_ideal_threshold)


# ----------------------------------------------------------------------------------------------------------------
# the public function
# ----------------------------------------------------------------------------------------------------------------
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
        public implementations); ``"fresh"`` draws new noise each pass (the paper's text). ``eta`` is drawn first
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
        Forward-diffusion schedule; by default read from ``pipe.scheduler`` with
        :func:`freeinit_lab.schedules.get_schedule` (pass one built with ``shift=`` for flow-matching schedulers
        with dynamic shifting).
    progress
        Show a progress bar over passes; by default only when the pipeline's own bar is not disabled.
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
    # ---------------------------------------------------------------- validation (before any model runs)
    if isinstance(num_iters, bool) or not isinstance(num_iters, (int, np.integer)) or num_iters < 1:
        raise ValueError(
            f"num_iters={num_iters!r} must be an integer >= 1: the total number of sampling passes including the "
            "plain first one (1 = plain sampling, the paper uses 3-5)."
        )
    num_iters = int(num_iters)
    if renoise not in ("same", "fresh"):
        raise ValueError(f"renoise={renoise!r}; use 'same' (reuse the first initial noise) or 'fresh'.")
    if mix not in ("freeinit", "variance_preserving"):
        raise ValueError(
            f"mix={mix!r}; use 'freeinit' (weights H and 1 - H, as the public codes) or 'variance_preserving' "
            "(weights whose squares sum to one per frequency)."
        )
    _validate_filter(method, d_s, d_t, order, legacy_ideal_threshold)
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
    _check_generator(generator, _effective_batch(call_kwargs, params))
    user_latents = call_kwargs.pop("latents", None)
    if user_latents is not None and not isinstance(user_latents, torch.Tensor):
        raise TypeError(f"latents must be a torch.Tensor, got {type(user_latents).__name__}.")
    default_output = params["output_type"].default
    output_type = call_kwargs.pop("output_type", None if default_output is inspect.Parameter.empty else default_output)
    steps = call_kwargs.pop("num_inference_steps", params["num_inference_steps"].default
                            if "num_inference_steps" in params else None)
    if steps is None or steps is inspect.Parameter.empty:
        raise TypeError("pass num_inference_steps explicitly: the pipeline's signature has no default for it.")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"num_inference_steps={steps} must be >= 1.")
    custom = [k for k in ("timesteps", "sigmas") if call_kwargs.get(k) is not None]
    if fast_sampling and custom:
        raise ValueError(
            f"fast_sampling sets num_inference_steps per pass, but {' and '.join(custom)} override it; drop "
            f"{' / '.join(custom)} or use fast_sampling=False."
        )
    steps_per_pass = fast_sampling_steps(steps, num_iters) if fast_sampling else [steps] * num_iters

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
    if num_iters > 1 and not schedule.has_terminal_signal:
        warnings.warn(
            f"{type(pipe).__name__} uses {schedule.scheduler_class or schedule.family} whose training z_T carries no "
            f"signal (a_T = {a_T:.3g}, terminal SNR {schedule.terminal_snr:.3g}): inference already starts from the "
            "distribution the model was trained on, so there is no initialization gap for FreeInit to close. The "
            "low-pass mix below only keeps the low frequencies of pure noise (renoise='same': of the first "
            "initial noise).",
            FreeInitNoGapWarning,
            stacklevel=2,
        )
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
            # an open LatentProbe tags this pass as FreeInit iteration i of one run (a no-op otherwise)
            mark_iteration(
                pipe, i, num_iters=num_iters, method=method, d_s=d_s, d_t=d_t, order=order,
                use_fast_sampling=fast_sampling, renoise=renoise, mix=mix,
            )
            if i == 0:
                latents_in = user_latents
                signal_c = noise_c = None
            else:
                # FreeInit's reinitialisation: diffusers' random-draw order (eta first)
                from diffusers.utils.torch_utils import randn_tensor

                shape = tuple(clean.shape)
                eta = randn_tensor(shape, generator=generator, device=clean.device, dtype=torch.float32)
                if renoise == "fresh":
                    diffusion_noise = randn_tensor(shape, generator=generator, device=clean.device, dtype=torch.float32)
                else:
                    diffusion_noise = eps
                z0_c = layout.to_canonical(clean).to(torch.float32)
                noise_c = layout.to_canonical(diffusion_noise).to(torch.float32)
                eta_c = layout.to_canonical(eta)
                mask = lowpass_filter(
                    z0_c.shape, method, d_s, d_t, order, device=z0_c.device, dtype=torch.float32,
                    legacy_ideal_threshold=legacy_ideal_threshold,
                )
                z_T = schedule.diffuse(z0_c, t_terminal, noise_c)
                if mix == "freeinit":
                    reinit_c = reinit_noise(z_T, eta_c, mask)
                    signal_c = apply_lowpass(z0_c * a_T, mask)
                else:
                    reinit_c = reinit_noise_variance_preserving(z_T, eta_c, mask)
                    signal_c = apply_lowpass(z0_c * a_T, variance_preserving_weights(mask)[0])
                noise_c = reinit_c - signal_c
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
                    stack.enter_context(_capture_initial_noise(pipe, generator, record))
                if reuse_text_encoding:
                    stack.enter_context(_reuse_text_encoding(pipe, text_cache, replay=i > 0))
                counter = stack.enter_context(_count_denoiser(denoisers))
                cap = stack.enter_context(capture_final_latent(pipe, layout)) if decode else None
                out = pipe(**kwargs)
            t_after = time.perf_counter()
            out0 = out[0] if isinstance(out, (tuple, list)) else getattr(out, "frames", out)
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
        "num_iters": num_iters,
        "method": method,
        "d_s": float(d_s),
        "d_t": float(d_t),
        "order": float(order),
        "fast_sampling": bool(fast_sampling),
        "renoise": renoise,
        "mix": mix,
        "legacy_ideal_threshold": bool(legacy_ideal_threshold),
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
