"""Offline video diffusion pipelines: the embedded trained default and an exact Gaussian-prior reference.

* :class:`TinyVideoPipeline` — an unconditional pixel-space video ``DiffusionPipeline`` (the "VAE" is the
  identity: latents *are* the video in ``[-1, 1]``, layout ``(batch, channel, frame, height, width)``). It speaks
  the diffusers video-pipeline dialect the FreeInit engine and the probes rely on: ``latents=``,
  ``output_type="latent" | "pt" | "np" | "pil"``, ``generator`` (one or a list), ``num_inference_steps``,
  ``num_videos_per_prompt``, ``callback_on_step_end`` + ``callback_on_step_end_tensor_inputs``,
  ``return_dict``, ``prepare_latents`` (draws with diffusers' ``randn_tensor`` and scales by
  ``scheduler.init_noise_sigma``) and an output with ``.frames``.
* :func:`load_default_pipeline` — the trained :class:`~freeinit_lab.models.TinyVideoUNet` shipped in
  ``data/default_model/`` (16 frames × 32 × 32 RGB, trained on the procedural subjects world, normalised to unit
  variance per channel; see ``training_log.json`` and ``MODEL_CARD.md`` there).
* :func:`load_analytic_pipeline` — the same pipeline around :class:`~freeinit_lab.models.GaussianVideoDenoiser`,
  the exact MMSE denoiser of a stationary Gaussian video prior whose 3-D power spectrum is fitted to the real
  clips (:func:`fit_gaussian_prior`). An oracle for tests: its ε-prediction is exact, so any gap it shows is the
  schedule's, not a model error.

Both use the Stable-Diffusion DDPM schedule (scaled-linear β 0.00085 → 0.012, 1000 training steps). A model folder
stores its default sampler (``sampler.json``: one of :data:`SAMPLER_SCHEDULERS`, built on that schedule by
:func:`sampler_scheduler`); without one, DDIM (:func:`default_scheduler`).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from freeinit_lab._checks import require_int, require_seed

from .models import GaussianVideoDenoiser, TinyVideoUNet
from .paths import DATA_DIR

__all__ = [
    "DEFAULT_MODEL_DIR",
    "ChannelNormalizer",
    "TinyVideoPipeline",
    "TinyVideoPipelineOutput",
    "default_scheduler",
    "SAMPLER_SCHEDULERS",
    "sampler_scheduler",
    "store_sampler",
    "load_default_pipeline",
    "default_training_videos",
    "held_out_videos",
    "load_analytic_pipeline",
    "load_default_analytic_pipeline",
    "fit_gaussian_prior",
]

#: Folder of the embedded default pipeline (``save_pretrained`` layout).
DEFAULT_MODEL_DIR = DATA_DIR / "default_model"


def default_scheduler(**overrides) -> DDIMScheduler:
    """DDIM with the Stable-Diffusion training schedule (scaled-linear β 0.00085 → 0.012, 1000 steps).

    ``timestep_spacing="linspace"`` (as in AnimateDiff's examples) makes the first inference timestep 999, the
    same step FreeInit re-diffuses to. ``clip_sample=False``, ``set_alpha_to_one=False``,
    ``prediction_type="epsilon"``. Keyword ``overrides`` replace any of these.
    """
    cfg = dict(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="linspace",
        prediction_type="epsilon",
    )
    cfg.update(overrides)
    return DDIMScheduler(**cfg)


#: Scheduler classes a model folder's ``sampler.json`` may name: deterministic ODE samplers of the DDPM family (DDIM
#: with η = 0, DPM-Solver++ multistep, UniPC), whose output is a fixed function of the initial latent — what
#: FreeInit's re-noising, the controls and the probes assume — and whose forward process is the training schedule.
SAMPLER_SCHEDULERS = ("DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler")

#: Keys of a sampler description that are not scheduler settings.
_SAMPLER_KEYS = ("scheduler", "num_inference_steps", "eta", "eps_scale", "guidance_scale", "guidance_interval")


def _check_eps_scale(value, name: str = "eps_scale") -> float:
    """``value`` as a float if it is an ε-scaling factor λ: finite and > 0 (1 = off); else a ValueError."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0: the sampler divides the network's ε̂ by it "
                         "(1.0 = no scaling; values just above 1, e.g. 1.015, restore the power an over-estimated "
                         "ε̂ removes)")
    return float(value)


def _check_guidance_scale(value, name: str = "guidance_scale") -> float:
    """``value`` as a float if it is an autoguidance weight ``w``: finite and >= 0 (1 = the network alone);
    else a ValueError."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0: each step uses ε̂_guide + w (ε̂ − ε̂_guide) "
                         "(1.0 = the network alone; values above 1, e.g. 1.5, push the sample away from the guide "
                         "network's errors)")
    return float(value)


def _check_guidance_interval(value, name: str = "guidance_interval") -> tuple[float, float] | None:
    """``value`` as ``(t_low, t_high)`` floats if it is an autoguidance interval of training timesteps: ``None``
    (every step) or two finite numbers with ``0 <= t_low <= t_high`` (a list or tuple, as ``sampler.json`` holds
    it); else a ValueError naming the fix."""
    import numbers

    fix = (f"{name}={value!r} must be None (guide at every step) or two timesteps [t_low, t_high] with "
           "0 <= t_low <= t_high, e.g. [250, 999]: the guide is evaluated only at steps whose timestep t has "
           "t_low <= t <= t_high (Kynkäänniemi et al. 2024)")
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(fix)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) for v in value):
        raise ValueError(fix)
    low, high = float(value[0]), float(value[1])
    if not 0 <= low <= high:
        raise ValueError(fix)
    return low, high


#: A sampler description's keys that set a :class:`TinyVideoPipeline`'s defaults, with the class defaults.
_SAMPLER_DEFAULTS = {"num_inference_steps": ("default_num_inference_steps", 25), "eta": ("default_eta", 0.0),
                     "eps_scale": ("default_eps_scale", 1.0), "guidance_scale": ("default_guidance_scale", 1.0),
                     "guidance_interval": ("default_guidance_interval", None)}


def _sampler_defaults(sampler: dict, fallback: dict | None = None) -> dict:
    """The ``default_*`` keyword arguments of :class:`TinyVideoPipeline` a sampler description (``sampler.json``)
    sets; a key it lacks comes from ``fallback`` (a ``model_index.json`` or a pipeline's config, which hold the same
    ``default_*`` names), else from the class default. Checked where they are set (``_set_default_sampler``)."""
    fallback = fallback or {}
    return {arg: sampler.get(key, fallback.get(arg, default)) for key, (arg, default) in _SAMPLER_DEFAULTS.items()}


def _check_sampler(name: str, eta: float, where: str, fix: str) -> None:
    """Refuse a sampler class outside :data:`SAMPLER_SCHEDULERS`, or η > 0 for one other than DDIM (whose ``step``
    would ignore it): the one rule :func:`sampler_scheduler` and :func:`load_default_pipeline` share. ``where``
    names the description checked, ``fix`` how to mend an unknown class."""
    if name not in SAMPLER_SCHEDULERS:
        raise ValueError(
            f"{where} names the sampler {name}; the embedded pipelines load one of {', '.join(SAMPLER_SCHEDULERS)} "
            f"(deterministic samplers of the training schedule, on which the toolkit's FreeInit controls and probes "
            f"are validated): {fix}"
        )
    _check_eta(eta, f"{where}'s eta")
    if eta != 0.0 and name != "DDIMScheduler":
        raise ValueError(f"{where} gives eta={eta} for the deterministic {name}; η > 0 is DDIM's stochasticity "
                         "only: use eta=0.0 or DDIMScheduler")


def _check_eta(value, name: str = "eta") -> float:
    """``value`` as a float if it is a DDIM η in ``[0, 1]``; else a ValueError.

    DDIM's step draws noise of standard deviation ``σ_t = η · sqrt((1 − ᾱ_prev) / (1 − ᾱ_t)) · sqrt(1 − ᾱ_t / ᾱ_prev)``
    and keeps ``sqrt(1 − ᾱ_prev − σ_t²)`` of the predicted direction: η = 1 is the DDPM posterior, where σ_t² reaches
    ``1 − ᾱ_prev`` on the last steps, and η > 1 (or an infinite one) takes the square root of a negative number, so
    every value of the video comes out NaN."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] (DDIM's η: 0 deterministic, 1 the DDPM posterior's "
                         "noise; η > 1 makes DDIM take the square root of a negative variance, and every value of "
                         f"the video NaN); got {value!r}")
    return float(value)


def sampler_scheduler(sampler: dict):
    """The scheduler a sampler description names, on the Stable-Diffusion training schedule.

    ``sampler`` is a model folder's ``sampler.json``: ``{"scheduler": <class name>, "num_inference_steps": N,
    "eta": η, "eps_scale": λ, "guidance_scale": w and "guidance_interval": [t_low, t_high] (optional, see
    :class:`TinyVideoPipeline`), <scheduler settings>}``; the class (one
    of :data:`SAMPLER_SCHEDULERS`) is built by ``from_config`` on :func:`default_scheduler`'s configuration with
    the settings replacing it (e.g. ``algorithm_type="dpmsolver++"``, ``solver_order=2`` for DPM-Solver++(2M);
    ``set_alpha_to_one`` for DDIM). η > 0 is DDIM's only.
    """
    import diffusers

    name = sampler.get("scheduler", "DDIMScheduler")
    _check_sampler(name, float(sampler.get("eta", 0.0)), "the sampler description", "choose one of them")
    _check_eps_scale(sampler.get("eps_scale", 1.0), "the sampler description's eps_scale")
    _check_guidance_scale(sampler.get("guidance_scale", 1.0), "the sampler description's guidance_scale")
    _check_guidance_interval(sampler.get("guidance_interval"), "the sampler description's guidance_interval")
    settings = {k: v for k, v in sampler.items() if k not in _SAMPLER_KEYS}
    cls = getattr(diffusers, name)
    sched = cls.from_config(default_scheduler().config, **settings)
    unused = sorted(k for k in settings if k not in sched.config)
    if unused:
        raise ValueError(f"{name} has no setting(s) {unused}; remove them from the sampler description")
    return sched


def store_sampler(folder: str | Path, sampler: dict) -> None:
    """Make ``sampler`` (a ``sampler.json`` description, see :func:`sampler_scheduler`) a model folder's default.

    Writes the three places a folder names its sampler, from the one description, so that every loader samples
    with it: ``sampler.json`` (what a model card judges), ``scheduler/`` (the configured scheduler) and
    ``model_index.json`` (the scheduler class diffusers' loader builds, and ``default_num_inference_steps`` /
    ``default_eta`` / ``default_eps_scale`` / ``default_guidance_scale``; a guidance scale other than 1 needs the
    folder's ``guide/`` network). The description is checked (:func:`sampler_scheduler`) before
    anything is written.
    """
    import json

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"no pipeline at {folder} (model_index.json missing); export the model first "
                                "(scripts/train_default_model.py)")
    sched = sampler_scheduler(sampler)
    steps, eta = sampler.get("num_inference_steps"), float(sampler.get("eta", 0.0))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"the sampler description needs num_inference_steps, a whole number >= 1; got {steps!r}")
    index = _read_json(folder / "model_index.json")
    index["scheduler"] = ["diffusers", type(sched).__name__]
    index["default_num_inference_steps"], index["default_eta"] = steps, eta
    index["default_eps_scale"] = _check_eps_scale(sampler.get("eps_scale", 1.0))
    index["default_guidance_scale"] = _check_guidance_scale(sampler.get("guidance_scale", 1.0))
    interval = _check_guidance_interval(sampler.get("guidance_interval"))
    index["default_guidance_interval"] = None if interval is None else list(interval)
    if index["default_guidance_scale"] != 1.0 and not (folder / "guide" / "config.json").is_file():
        raise FileNotFoundError(f"the sampler description guides with guidance_scale="
                                f"{index['default_guidance_scale']}, but {folder} holds no guide network "
                                "(guide/config.json): save one there (TinyVideoUNet.save_pretrained), or leave "
                                "guidance_scale out")
    if (folder / "guide" / "config.json").is_file():  # diffusers' own loader then loads the guide too
        index["guide"] = ["freeinit_lab.embedded.models", "TinyVideoUNet"]
    sched.save_pretrained(folder / "scheduler")
    (folder / "sampler.json").write_text(json.dumps(sampler, indent=1))
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _is_count(value) -> bool:
    """Whether ``value`` is an integer >= 1 (a Python or numpy int, not a bool): a video size."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer)) and value >= 1


def _whole_steps(value, name: str) -> int:
    """A step count: an int, or a float holding a whole number (25.0, as diffusers accepts), >= 1; anything else
    (a bool, a string such as "25", 2.5, NaN, 0) is a ValueError naming the value and its type."""
    import numbers

    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)) \
        and float(value) == int(value) and int(value) >= 1
    if not ok:
        raise ValueError(f"{name} must be a whole number >= 1; got {value!r} ({type(value).__name__})")
    return int(value)


class ChannelNormalizer(ModelMixin, ConfigMixin):
    """Per-channel affine map between display videos and the model's unit-variance space (a "VAE" of scale only).

    ``encode(x) = (x − shift_c) / scale_c`` and ``decode(z) = z · scale_c + shift_c`` per channel ``c``, with
    ``shift`` and ``scale`` the channel means and standard deviations of the training distribution, so that model
    space has zero mean and unit variance per channel — the role ``vae.config.scaling_factor`` plays for Stable
    Diffusion latents. Stored in the model folder (``normalizer/``) and applied by :class:`TinyVideoPipeline`.

    Parameters
    ----------
    shift, scale : sequence of float
        One value per channel; ``scale > 0``.
    """

    @register_to_config
    def __init__(self, shift: tuple[float, ...] = (0.0, 0.0, 0.0), scale: tuple[float, ...] = (1.0, 1.0, 1.0)):
        super().__init__()
        if len(shift) != len(scale) or not len(shift):
            raise ValueError(f"shift and scale need one value per channel; got {len(shift)} and {len(scale)}")
        if min(float(v) for v in scale) <= 0 or not all(np.isfinite([*shift, *scale])):
            raise ValueError(f"scale must be finite and > 0, shift finite; got shift={shift}, scale={scale}")
        self.register_buffer("shift_c", torch.tensor([float(v) for v in shift]).view(-1, 1, 1, 1), persistent=False)
        self.register_buffer("scale_c", torch.tensor([float(v) for v in scale]).view(-1, 1, 1, 1), persistent=False)
        # a parameter-free module still needs one tensor for diffusers' save/load round trip
        self.register_buffer("format_marker", torch.ones(1), persistent=True)

    @classmethod
    def fit(cls, videos: torch.Tensor) -> "ChannelNormalizer":
        """Fit ``shift``/``scale`` to ``(N, C, F, H, W)`` videos: per-channel mean and standard deviation."""
        if videos.ndim != 5:
            raise ValueError(f"expected (N, C, F, H, W) videos, got shape {tuple(videos.shape)}")
        x = videos.double().transpose(0, 1).reshape(videos.shape[1], -1)
        return cls(shift=tuple(x.mean(1).tolist()), scale=tuple(x.std(1).tolist()))

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.shift_c.shape[0]:
            raise ValueError(f"expected (batch, {self.shift_c.shape[0]} channels, frame, height, width); "
                             f"got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Display video → model space, ``(x − shift) / scale``."""
        self._check(x)
        return (x - self.shift_c.to(x)) / self.scale_c.to(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Model space → display video, ``z · scale + shift`` (not clipped)."""
        self._check(z)
        return z * self.scale_c.to(z) + self.shift_c.to(z)


def _check_guide(unet, guide) -> None:
    """Refuse an autoguidance ``guide`` that cannot stand in for ``unet``: not a module, or another channel count
    or video size (its ε̂ would be combined with ``unet``'s voxel by voxel)."""
    cfg, gcfg = getattr(unet, "config", None), getattr(guide, "config", None)
    if not isinstance(guide, torch.nn.Module) or gcfg is None:
        raise TypeError(f"guide must be an ε-predicting network with a config (a TinyVideoUNet); got "
                        f"{type(guide).__name__}")
    if cfg is None:
        return
    mine = {"in_channels": cfg.in_channels, "out_channels": cfg.out_channels, **unet_video_size(cfg)}
    try:
        theirs = {"in_channels": gcfg.in_channels, "out_channels": gcfg.out_channels, **unet_video_size(gcfg)}
    except AttributeError as err:
        raise TypeError(f"guide's config lacks {err.name!r}: it must describe an ε-predicting video network "
                        "(a TinyVideoUNet)") from None
    differ = {k: (mine[k], theirs[k]) for k in mine if int(mine[k]) != int(theirs[k])}
    if differ:
        raise ValueError("the guide network does not denoise the network's videos: " + ", ".join(
            f"{k} {a} (unet) vs {b} (guide)" for k, (a, b) in differ.items())
            + "; train the guide on the same data and video size (scripts/train_default_model.py)")


def _step_parameters(scheduler) -> set[str]:
    """Parameter names of the scheduler class's own ``step`` (seen through any instance-level wrapper)."""
    return set(inspect.signature(type(scheduler).step).parameters)


@dataclass
class TinyVideoPipelineOutput(BaseOutput):
    """Output of :class:`TinyVideoPipeline`.

    Attributes
    ----------
    frames : np.ndarray | torch.Tensor | list
        ``output_type="np"``: ``(batch, frame, height, width, channel)`` float32 in ``[0, 1]`` (diffusers'
        video layout); ``"pt"``: ``(batch, frame, channel, height, width)`` in ``[0, 1]``; ``"pil"``: a list of
        lists of PIL images; ``"latent"``: the final latents ``(batch, channel, frame, height, width)`` in model
        space (the normalised video when the pipeline has a :class:`ChannelNormalizer`, else pixel values in
        ``[-1, 1]``; unclipped).
    """

    frames: Any


class TinyVideoPipeline(DiffusionPipeline):
    """Unconditional pixel-space video diffusion pipeline (identity VAE), diffusers-compatible.

    Parameters
    ----------
    unet : TinyVideoUNet or GaussianVideoDenoiser
        ε-predicting denoiser on ``(batch, channel, frame, height, width)``.
    scheduler : SchedulerMixin
        Any diffusers scheduler with ``set_timesteps`` / ``step`` / ``scale_model_input``.
    normalizer : ChannelNormalizer, optional
        Maps model space to display video when decoding (``None``: model space is the display video).
    default_num_inference_steps : int
        Steps used when a call does not give ``num_inference_steps`` (the model folder's ``sampler.json``).
    default_eta : float
        DDIM η used when a call does not give ``eta`` (the model folder's ``sampler.json``; 0 = deterministic).
    default_eps_scale : float
        ε-scaling factor λ used when a call does not give ``eps_scale`` (the model folder's ``sampler.json``;
        1 = off): every step passes ``ε̂ / λ`` to the scheduler instead of the network's ``ε̂`` (Ning et al. 2023,
        "Elucidating the exposure bias in diffusion models", arXiv 2308.15321). A network whose ε̂ over-estimates
        the noise removes some of the signal's fine detail at each step, and its samples come out under-powered;
        λ slightly above 1 removes less. It corrects a trained network's error, so an exact-score model needs none.
    guide : TinyVideoUNet, optional
        A weaker ε-predicting network of the same data and video size (fewer parameters, fewer training steps),
        for *autoguidance* (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself", arXiv
        2406.02507): with guidance scale ``w`` each step uses ``ε̃ = ε̂_guide + w (ε̂ − ε̂_guide)``, extrapolating
        from the guide's errors past the network's own. It is what classifier-free guidance is for the text-to-video
        models FreeInit was shown on, for an unconditional model (the two predictions differ in the network, not
        in the condition). ``w = 1`` is the network alone, and then the guide is never evaluated.
    default_guidance_scale : float
        ``w`` used when a call does not give ``guidance_scale`` (the model folder's ``sampler.json``; 1 = off).
    default_guidance_interval : (float, float), optional
        ``(t_low, t_high)`` used when a call does not give ``guidance_interval`` (the model folder's
        ``sampler.json``; ``None`` = guide at every step): the guide is evaluated, and ``w`` applied, only at steps
        whose training timestep ``t`` has ``t_low <= t <= t_high``; the other steps use ``ε̂`` alone. Guidance
        limited to an interval of noise levels is Kynkäänniemi et al. 2024 ("Applying guidance in a limited
        interval improves sample and distribution quality in diffusion models", arXiv 2404.07724); here it saves
        the guide's evaluations at the steps that do not need them.

    Examples
    --------
    >>> pipe = load_default_pipeline()
    >>> out = pipe(generator=torch.Generator().manual_seed(0))  # the stored default sampler
    >>> out.frames.shape  # display RGB: (batch, frame, height, width, rgb)
    (1, 16, 32, 32, 3)
    >>> pipe(generator=torch.Generator().manual_seed(0), output_type="latent").frames.shape  # model space
    torch.Size([1, 3, 16, 32, 32])
    """

    model_cpu_offload_seq = "unet->guide"
    _optional_components = ["normalizer", "guide"]
    _callback_tensor_inputs = ["latents", "noise_pred", "pred_original_sample"]

    def __init__(self, unet, scheduler, normalizer: ChannelNormalizer | None = None,
                 default_num_inference_steps: int = 25, default_eta: float = 0.0, default_eps_scale: float = 1.0,
                 guide=None, default_guidance_scale: float = 1.0, default_guidance_interval=None):
        super().__init__()
        if guide is not None:
            _check_guide(unet, guide)
        self.register_modules(unet=unet, scheduler=scheduler, normalizer=normalizer, guide=guide)
        self._set_default_sampler(default_num_inference_steps, default_eta, default_eps_scale, default_guidance_scale,
                                  default_guidance_interval)

    def _set_default_sampler(self, default_num_inference_steps, default_eta, default_eps_scale,
                             default_guidance_scale=1.0, default_guidance_interval=None) -> None:
        """Check and store the default step count, η, ε-scaling λ, guidance scale w and guidance interval — also
        in ``model_index.json``, so ``save_pretrained`` / ``from_pretrained`` keep the default sampler."""
        steps = _whole_steps(default_num_inference_steps, "default_num_inference_steps")
        eta = _check_eta(default_eta, "default_eta")
        eps_scale = _check_eps_scale(default_eps_scale, "default_eps_scale")
        w = _check_guidance_scale(default_guidance_scale, "default_guidance_scale")
        if w != 1.0 and getattr(self, "guide", None) is None:
            raise ValueError(f"default_guidance_scale={w} needs a guide network (guide=...); without one use 1.0")
        self.default_num_inference_steps, self.default_eta, self.default_eps_scale = steps, float(eta), eps_scale
        self.default_guidance_scale, self.default_guidance_interval = w, default_guidance_interval  # setter checks
        interval = self.default_guidance_interval
        self.register_to_config(default_num_inference_steps=steps, default_eta=float(eta),
                                default_eps_scale=eps_scale, default_guidance_scale=w,
                                default_guidance_interval=None if interval is None else list(interval))

    @property
    def default_guidance_interval(self) -> tuple[float, float] | None:
        """``(t_low, t_high)`` of the default sampler's autoguidance, or ``None`` (every step); see the class
        docstring. (Kept beside the config rather than as a plain attribute: diffusers reads a list-valued config
        entry set as an attribute as a component's ``(library, class)``.)"""
        return getattr(self, "_default_guidance_interval", None)

    @default_guidance_interval.setter
    def default_guidance_interval(self, value) -> None:
        self._default_guidance_interval = _check_guidance_interval(value, "default_guidance_interval")

    # -- diffusers-style properties ---------------------------------------------------------------------------
    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return getattr(self, "_interrupt", False)

    @property
    def sample_shape(self) -> tuple[int, int, int, int]:
        """Default ``(channel, frame, height, width)`` of one video."""
        size = unet_video_size(self.unet.config)
        return (self.unet.config.in_channels, size["frames"], size["height"], size["width"])

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "TinyVideoPipeline":
        """diffusers' loader, with the scheduler class the folder's ``scheduler/`` stores.

        diffusers builds the class ``model_index.json`` names from ``scheduler/scheduler_config.json``. A sampler
        chosen after export (``scripts/model_card.py --choose-sampler`` writes ``scheduler/`` and ``sampler.json``
        only, as in the shipped default: UniPC stored, DDIM named) would load as the exported class on the chosen
        one's settings and sample other videos than :func:`load_default_pipeline`; a local folder's stored class
        is loaded instead, and the step count and η of its ``sampler.json`` are the defaults (as they are for
        :func:`load_default_pipeline`). A ``sampler.json`` that names another class or other settings than
        ``scheduler/`` holds, or η > 0 for a sampler other than DDIM (e.g. one copied from another model folder), is
        refused as :func:`load_default_pipeline` refuses it, before the weights load. A ``scheduler=`` passed here
        still replaces the stored scheduler (and ``sampler.json`` then gives only the step count and η).
        """
        folder = Path(str(pretrained_model_name_or_path))
        stored = _stored_scheduler_class(folder) if "scheduler" not in kwargs and folder.is_dir() else None
        sampler = _read_json(folder / "sampler.json") if folder.is_dir() and (folder / "sampler.json").is_file() else None
        fix = ("write sampler.json and scheduler/ from one description (scripts/model_card.py --choose-sampler, or "
               "fl.store_sampler(folder, desc)), or pass scheduler=... to from_pretrained")
        if sampler is not None and stored is not None:
            named = sampler.get("scheduler", stored)
            if named != stored:
                raise ValueError(f"{folder}/sampler.json names {named} but {folder}/scheduler stores {stored}: the "
                                 f"stored sampler must be one class; {fix}")
            _check_sampler(named, float(sampler.get("eta", 0.0)), f"{folder}/sampler.json", fix)
        if stored is not None:
            named = (_read_json(folder / "model_index.json").get("scheduler") or [None, None])[-1]
            if stored != named:
                import diffusers

                sched_cls = getattr(diffusers, stored, None)
                if sched_cls is None:
                    raise ValueError(f"{folder}/scheduler stores {stored}, which this diffusers does not have; pass "
                                     "scheduler=... to load the pipeline with another")
                kwargs["scheduler"] = sched_cls.from_pretrained(folder / "scheduler", local_files_only=True)
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if sampler is not None:
            if stored is not None:
                _check_sampler_settings(sampler, pipe.scheduler, str(folder), loader="from_pretrained")
            pipe._set_default_sampler(**_sampler_defaults(sampler, pipe.config))
        return pipe

    def prepare_latents(
        self,
        batch_size: int,
        num_channels_latents: int,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device | str,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Initial latents ``(batch, channel, frame, height, width)``.

        Draws ``randn_tensor(shape, generator)`` (one generator per video when a list is given) unless
        ``latents`` is passed, then multiplies by ``scheduler.init_noise_sigma`` — exactly what diffusers' video
        pipelines do, so wrappers that capture the initial noise see the same draw.
        """
        shape = (batch_size, num_channels_latents, num_frames, height, width)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"got a list of {len(generator)} generators for {batch_size} videos; pass one generator per "
                "video (batch_size * num_videos_per_prompt) or a single generator"
            )
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=torch.device(device), dtype=dtype)
        else:
            if tuple(latents.shape) != shape:
                raise ValueError(f"`latents` has shape {tuple(latents.shape)}, expected {shape}")
            bad = int((~torch.isfinite(latents)).sum()) if latents.is_floating_point() else 0
            if bad:
                raise ValueError(f"`latents` hold {bad} non-finite value(s) (NaN or inf), which would give NaN videos "
                                 "(black frames as PIL); pass finite initial latents")
            latents = latents.to(device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Model space → video ``(batch, frame, channel, height, width)`` in ``[0, 1]``.

        ``x = normalizer.decode(latents)`` (identity without a normalizer), then ``(clip(x, −1, 1) + 1) / 2``.
        """
        x = latents.float()
        norm = getattr(self, "normalizer", None)
        if norm is not None:
            x = norm.decode(x)
        return ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        batch_size: int | None = None,
        num_videos_per_prompt: int = 1,
        eta: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        eps_scale: float | None = None,
        guidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        **kwargs,
    ) -> TinyVideoPipelineOutput | tuple:
        """Sample videos with the pipeline's scheduler from Gaussian noise or given ``latents``.

        Parameters
        ----------
        prompt : str or list of str, optional
            Accepted for API compatibility with text-to-video pipelines; the model is unconditional, so only
            the number of prompts is used (``batch = len(prompt) * num_videos_per_prompt``).
        num_frames, height, width : int, optional
            Video size; default: the model's training size (``unet.config``).
        num_inference_steps : int, optional
            Denoising steps (default: ``default_num_inference_steps``, the model folder's stored sampler).
        batch_size : int, optional
            Number of videos when no prompt is given (default 1; with prompts, their number, which a different
            ``batch_size`` is refused for); multiplied by ``num_videos_per_prompt``.
        eta : float, optional
            DDIM η in ``[0, 1]`` (0 = deterministic DDIM, 1 = the DDPM posterior's noise; default: ``default_eta``,
            the model folder's stored sampler). η > 0 with a scheduler whose ``step`` takes no ``eta`` is refused
            (it would be silently ignored).
        generator : torch.Generator or list of torch.Generator, optional
            Randomness for the initial noise (and DDIM η > 0); a list gives one generator per video.
        latents : torch.Tensor, optional
            Initial latents ``(batch, channel, frame, height, width)`` (then ``generator`` is only used for
            η > 0). Multiplied by ``scheduler.init_noise_sigma`` like in diffusers.
        output_type : {"np", "pt", "pil", "latent"}
            See :class:`TinyVideoPipelineOutput`.
        return_dict : bool
            Return a :class:`TinyVideoPipelineOutput` (default) or a tuple ``(frames,)``.
        callback_on_step_end : callable, optional
            ``callback(pipe, i, t, callback_kwargs) -> dict`` called after every scheduler step; returned
            ``"latents"`` replace the current latents (diffusers semantics).
        callback_on_step_end_tensor_inputs : list of str, optional
            Names put in ``callback_kwargs``; any of ``"latents"``, ``"noise_pred"``, ``"pred_original_sample"``
            (default ``["latents"]``).
        eps_scale : float, optional
            ε-scaling λ > 0: each step hands ``ε̂ / λ`` to the scheduler (and to ``noise_pred`` in callbacks, and
            to probes, which read the scheduler's input); default ``default_eps_scale``, the model folder's
            stored sampler (1 = the network's ε̂ unchanged). See the class docstring.
        guidance_scale : float, optional
            Autoguidance weight ``w >= 0``: each step uses ``ε̂_guide + w (ε̂ − ε̂_guide)`` (before ε-scaling);
            default ``default_guidance_scale``, the model folder's stored sampler. ``w = 1`` evaluates the network
            alone; any other ``w`` needs the pipeline's ``guide`` network (refused without one: an unconditional
            model has no classifier-free guidance to apply it to). See the class docstring.
        guidance_interval : (float, float), optional
            ``(t_low, t_high)``: with ``w != 1`` the guide is evaluated only at steps whose timestep ``t`` has
            ``t_low <= t <= t_high``, the others use ``ε̂`` alone; default ``default_guidance_interval``, the model
            folder's stored sampler (``None``: every step). An interval that holds none of the sampler's timesteps
            is refused when ``w != 1`` (the guidance would silently do nothing). See the class docstring.

        Returns
        -------
        TinyVideoPipelineOutput or tuple
        """
        unknown = set(kwargs) - {"negative_prompt", "decode_chunk_size", "cross_attention_kwargs"}
        if unknown:
            raise TypeError(f"TinyVideoPipeline.__call__ got unexpected keyword arguments {sorted(unknown)}")
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt', 'pil' or 'latent', got {output_type!r}")
        if latents is not None and not (isinstance(latents, torch.Tensor) and latents.is_floating_point()):
            what = f"a {latents.dtype} tensor" if isinstance(latents, torch.Tensor) else f"a {type(latents).__name__}"
            raise TypeError(f"`latents` must be a real floating-point torch.Tensor (batch, channel, frame, height, "
                            f"width); got {what}, which would be cast to {self.unet.dtype} (a complex one losing its "
                            "imaginary part); pass e.g. torch.as_tensor(latents, dtype=torch.float32)")
        if generator is not None and not isinstance(generator, torch.Generator) and not (
                isinstance(generator, list) and all(isinstance(g, torch.Generator) for g in generator)):
            got = (f"a list holding {sorted({type(g).__name__ for g in generator})}" if isinstance(generator, list)
                   else f"a {type(generator).__name__}")
            raise TypeError(f"generator must be a torch.Generator or a list of them (one per video); got {got}: for a "
                            "seed s pass torch.Generator().manual_seed(s)")
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        tensor_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        bad = [k for k in tensor_inputs if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs {bad} not supported; choose from "
                             f"{self._callback_tensor_inputs}")
        if num_inference_steps is None:
            num_inference_steps = self.default_num_inference_steps
        if eta is None:
            eta = self.default_eta
        eps_scale = _check_eps_scale(self.default_eps_scale if eps_scale is None else eps_scale)
        guidance_scale = _check_guidance_scale(self.default_guidance_scale if guidance_scale is None
                                               else guidance_scale)
        guidance_interval = _check_guidance_interval(self.default_guidance_interval if guidance_interval is None
                                                     else guidance_interval)
        guide = getattr(self, "guide", None)
        if guidance_scale != 1.0 and guide is None:
            raise ValueError(f"guidance_scale={guidance_scale}, but this pipeline has no guide network, so nothing "
                             "would guide it (an unconditional model has no classifier-free guidance): pass "
                             "guidance_scale=1.0 (or leave it out), or give the pipeline a guide (guide=...)")
        num_inference_steps = _whole_steps(num_inference_steps, "num_inference_steps")
        eta = _check_eta(eta)
        c, f0, h0, w0 = self.sample_shape
        sizes = dict(num_frames=num_frames, height=height, width=width)
        bad = {k: v for k, v in sizes.items() if v is not None and not _is_count(v)}
        if bad:
            raise ValueError(f"{', '.join(f'{k}={v!r}' for k, v in bad.items())}: video sizes must be integers >= 1 "
                             f"(leave them out for the model's training size {(f0, h0, w0)})")
        num_frames = f0 if num_frames is None else int(num_frames)
        height = h0 if height is None else int(height)
        width = w0 if width is None else int(width)
        num_videos_per_prompt = require_int("num_videos_per_prompt", num_videos_per_prompt, low=0,
                                            why=" (videos per prompt, or per batch entry)")
        if batch_size is not None:
            batch_size = require_int("batch_size", batch_size, low=0, why=" (videos to sample without a prompt)")
        if prompt is not None:
            n = 1 if isinstance(prompt, str) else len(prompt)
            if batch_size is not None and batch_size != n:
                raise ValueError(f"batch_size={batch_size} but {n} prompt(s): the prompts set the batch, so "
                                 "batch_size would be ignored; leave batch_size out, or pass as many prompts")
        elif latents is not None and batch_size is None:
            n = latents.shape[0] // num_videos_per_prompt if num_videos_per_prompt else 0
        else:
            n = 1 if batch_size is None else batch_size
        batch = n * num_videos_per_prompt
        if batch < 1:
            raise ValueError(f"no videos to sample: batch_size (or the number of prompts, or of latents) {n} × "
                             f"num_videos_per_prompt {num_videos_per_prompt} = {batch}; pass at least one")

        device = self._execution_device
        dtype = self.unet.dtype
        self._interrupt = False
        latents = self.prepare_latents(batch, c, num_frames, height, width, dtype, device, generator, latents)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        guided_steps = [guidance_scale != 1.0 and (guidance_interval is None
                                                   or guidance_interval[0] <= float(t) <= guidance_interval[1])
                        for t in timesteps]
        if guidance_scale != 1.0 and not any(guided_steps):
            raise ValueError(f"guidance_interval={list(guidance_interval)} holds none of the sampler's timesteps "
                             f"{[int(t) for t in timesteps]}, so guidance_scale={guidance_scale} would change "
                             "nothing; widen the interval, or pass guidance_scale=1.0")
        # diffusers' own check: the step's signature (``inspect.signature`` follows ``functools.wraps`` wrappers,
        # so a probe or a user wrapping ``scheduler.step`` does not hide ``eta``/``generator``)
        step_params = inspect.signature(self.scheduler.step).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in step_params.values())
        step_kwargs = {}
        if "eta" in step_params or (takes_any and "eta" in _step_parameters(self.scheduler)):
            step_kwargs["eta"] = eta
        if "generator" in step_params or (takes_any and "generator" in _step_parameters(self.scheduler)):
            step_kwargs["generator"] = generator
        if float(eta) != 0.0 and "eta" not in step_kwargs:
            raise ValueError(f"eta={eta} (DDIM's stochasticity), but {type(self.scheduler).__name__}.step takes no "
                             "eta, so it would be ignored; pass eta=0.0 or use a DDIMScheduler")

        with self.progress_bar(total=len(timesteps)) as bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                model_in = self.scheduler.scale_model_input(latents, t)
                noise_pred = self.unet(model_in, t).sample
                if guided_steps[i]:  # autoguidance: eps_guide + w (eps - eps_guide), at the steps it applies to
                    guided = guide(model_in.to(guide.dtype), t).sample.to(noise_pred.dtype)
                    noise_pred = guided + guidance_scale * (noise_pred - guided)
                if eps_scale != 1.0:
                    noise_pred = noise_pred / eps_scale
                res = self.scheduler.step(noise_pred, t, latents, **step_kwargs)
                latents = res.prev_sample
                pred_original_sample = getattr(res, "pred_original_sample", None)
                if callback_on_step_end is not None:
                    local = {"latents": latents, "noise_pred": noise_pred,
                             "pred_original_sample": pred_original_sample}
                    cb_kwargs = {k: local[k] for k in tensor_inputs}
                    cb_out = callback_on_step_end(self, i, t, cb_kwargs) or {}
                    latents = cb_out.pop("latents", latents)
                bar.update()

        if output_type == "latent":
            frames = latents
        else:
            video = self.decode_latents(latents)
            if output_type == "pt":
                frames = video
            elif output_type == "np":
                frames = video.permute(0, 1, 3, 4, 2).cpu().numpy()
            else:
                from PIL import Image

                arr = (video.permute(0, 1, 3, 4, 2).cpu().numpy() * 255).round().astype(np.uint8)
                frames = [[Image.fromarray(fr) for fr in vid] for vid in arr]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return TinyVideoPipelineOutput(frames=frames)


def _read_json(path: Path) -> dict:
    """A model folder's JSON file; a corrupt one is a ``ValueError`` naming the file (not a bare decode error)."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore it from the model folder's source, or export "
                         "the folder again (scripts/train_default_model.py, scripts/model_card.py)") from None


def _stored_scheduler_class(folder: Path) -> str | None:
    """The class name ``scheduler/scheduler_config.json`` of a pipeline folder stores (``None`` without one)."""
    cfg = Path(folder) / "scheduler" / "scheduler_config.json"
    return _read_json(cfg).get("_class_name", "DDIMScheduler") if cfg.is_file() else None


def _check_sampler_settings(sampler: dict, sched, where: str, loader: str = "load_default_pipeline") -> None:
    """Refuse scheduler settings in ``sampler`` (a ``sampler.json``) that the loaded ``sched`` does not hold.

    ``sampler.json`` is the sampler a model card judges (``scripts/model_card.py`` builds it with
    :func:`sampler_scheduler`) while the pipeline samples with ``scheduler/``; a setting the two disagree on would
    make the card describe another sampler than the pipeline's."""
    settings = {k: v for k, v in sampler.items() if k not in _SAMPLER_KEYS}
    unknown = sorted(k for k in settings if k not in sched.config)
    if unknown:
        raise ValueError(f"{where}/sampler.json: {type(sched).__name__} has no setting(s) {unknown}; remove them "
                         "from sampler.json")
    differ = [k for k, v in settings.items()
              if (list(v) if isinstance(v, (list, tuple)) else v)
              != (list(sched.config[k]) if isinstance(sched.config[k], (list, tuple)) else sched.config[k])]
    if differ:
        pairs = ", ".join(f"{k}={settings[k]!r} but scheduler/ holds {sched.config[k]!r}" for k in differ)
        raise ValueError(f"{where}/sampler.json gives {pairs}: the stored sampler must be one; write both from one "
                         "description (scripts/model_card.py --choose-sampler, or fl.store_sampler(folder, desc)), "
                         f"or pass scheduler=... to {loader}")


def unet_video_size(config) -> dict[str, int]:
    """``{"frames", "height", "width"}`` of the videos a UNet config samples (``width`` defaults to
    ``sample_size``)."""
    return {"frames": int(config.num_frames), "height": int(config.sample_size),
            "width": int(getattr(config, "width", None) or config.sample_size)}


def training_size_differences(log: dict, config) -> dict[str, tuple[int, int]]:
    """``{key: (logged, sampled)}`` where a ``training_log.json``'s ``frames``/``height``/``width`` differ from the
    video size the UNet ``config`` samples (:func:`unet_video_size`); keys the log lacks are not compared."""
    return {k: (int(log[k]), v) for k, v in unet_video_size(config).items()
            if log.get(k) is not None and int(log[k]) != v}


def _check_weights_file(path: Path, part: str, info: dict, fix: str) -> None:
    """Refuse a network ``path/part`` whose weights file lacks tensors of its config (or holds others): diffusers
    loads it with a log line and randomly initialised layers."""
    missing, unexpected = list(info.get("missing_keys", [])), list(info.get("unexpected_keys", []))
    mismatched = [k[0] if isinstance(k, (tuple, list)) else k for k in info.get("mismatched_keys", [])]
    if missing or unexpected or mismatched:
        parts = [f"{what} {keys[:4]}{' ...' if len(keys) > 4 else ''}" for what, keys in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", mismatched)) if keys]
        raise ValueError(f"{path}/{part}: the weights file does not match {part}/config.json (tensors "
                         f"{'; '.join(parts)}): the network would sample with randomly initialised layers; {fix}")


def _check_folder_parts(path: Path, unet, info: dict, normalizer, log: dict) -> None:
    """Refuse a model folder whose parts do not belong together, before any sampling.

    diffusers loads a weights file that lacks some of the network's tensors (or holds others) with a log line and
    randomly initialised layers; the normaliser's channel count and the training log's video size are otherwise
    only noticed when decoding, or not at all (``default_training_videos`` draws the log's size)."""
    fix = "restore the folder from its source, or export it again with scripts/train_default_model.py"
    _check_weights_file(path, "unet", info, fix)
    c = unet.config
    if normalizer is not None and normalizer.shift_c.shape[0] != c.in_channels:
        raise ValueError(f"{path}/normalizer holds {normalizer.shift_c.shape[0]} channels but the network takes "
                         f"{c.in_channels}; {fix}")
    differ = training_size_differences(log, c)
    if differ:
        pairs = ", ".join(f"{k} {a} in training_log.json but {b} in unet/config.json" for k, (a, b) in differ.items())
        raise ValueError(f"{path}: {pairs}; the model would sample videos of another size than its training data "
                         f"(default_training_videos); {fix}")


def load_default_pipeline(path: str | Path | None = None, *, progress: bool = False,
                          scheduler=None) -> TinyVideoPipeline:
    """Load the embedded trained default pipeline (offline, from ``data/default_model/``) or another such folder.

    A folder holds ``model_index.json``, ``unet/``, ``scheduler/`` and ``training_log.json``; models trained on
    normalised data also hold ``normalizer/`` (:class:`ChannelNormalizer`), and ``sampler.json`` stores the
    default sampler: its scheduler class (one of :data:`SAMPLER_SCHEDULERS`, configured in ``scheduler/``), step
    count and DDIM η, used when a call gives no ``num_inference_steps`` or ``eta``. Another stored scheduler class,
    different classes or settings in ``sampler.json`` and ``scheduler/``, or η > 0 for a non-DDIM sampler are
    refused, naming the fix.

    Parameters
    ----------
    path : str or Path, optional
        Pipeline folder (default :data:`DEFAULT_MODEL_DIR`).
    progress : bool
        Show the per-call progress bar (off by default).
    scheduler : SchedulerMixin, optional
        Replace the stored scheduler (the stored step count still applies unless a call gives its own).

    Returns
    -------
    TinyVideoPipeline
        Unconditional; ``pipe(batch_size=N, generator=g, output_type="latent")`` returns model-space videos in
        ``.frames``, ``(N, channel, frame, height, width)``; ``output_type="np"`` display RGB.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if not (path / "model_index.json").exists():
        raise FileNotFoundError(
            f"no pipeline at {path} (model_index.json missing). The default model ships in data/default_model/; "
            "retrain it with `python scripts/train_default_model.py`."
        )
    if not (path / "unet" / "config.json").is_file():
        raise FileNotFoundError(f"{path}/unet/config.json missing: the folder holds no network (diffusers would report "
                                "it as a failed download); restore the folder from its source, or export it again "
                                "with scripts/train_default_model.py")
    if scheduler is None and not (path / "scheduler" / "scheduler_config.json").is_file():
        raise FileNotFoundError(f"{path}/scheduler/scheduler_config.json missing: the folder stores no sampler "
                                "configuration; export it again, or pass scheduler=... to load_default_pipeline")
    log = _read_json(path / "training_log.json") if (path / "training_log.json").exists() else {}
    normalizer = None
    if (path / "normalizer").exists():
        normalizer = ChannelNormalizer.from_pretrained(path / "normalizer", local_files_only=True,
                                                       low_cpu_mem_usage=False).eval()
    elif log.get("normalization", "identity") != "identity":
        raise FileNotFoundError(
            f"{path} was trained on normalised data but has no normalizer/ folder, so its samples cannot be "
            "decoded; export the model again with scripts/train_default_model.py (it writes normalizer/)."
        )
    sampler = _read_json(path / "sampler.json") if (path / "sampler.json").exists() else {}
    index = _read_json(path / "model_index.json") if (path / "model_index.json").exists() else {}
    if scheduler is None:
        # the class sampler.json names and the one scheduler/ holds (a save_pretrained folder has no sampler.json)
        stored = {sampler["scheduler"]} if "scheduler" in sampler else set()
        if (path / "scheduler" / "scheduler_config.json").exists():
            stored.add(_read_json(path / "scheduler" / "scheduler_config.json").get("_class_name", "DDIMScheduler"))
        stored = stored or {"DDIMScheduler"}
        fix = ("pass scheduler=... to load_default_pipeline to sample with another scheduler, or store one of those "
               "(scripts/model_card.py --choose-sampler)")
        if len(stored) != 1:
            raise ValueError(f"{path} stores a {' / '.join(sorted(stored))} sampler: sampler.json and scheduler/ "
                             f"must hold the same class; {fix}")
        _check_sampler(next(iter(stored)), float(sampler.get("eta", 0.0)), str(path), fix)
    unet, info = TinyVideoUNet.from_pretrained(path / "unet", local_files_only=True, low_cpu_mem_usage=False,
                                               output_loading_info=True)
    unet.eval()
    _check_folder_parts(path, unet, info, normalizer, log)
    guide = None
    if (path / "guide").exists():
        if not (path / "guide" / "config.json").is_file():
            raise FileNotFoundError(f"{path}/guide/config.json missing: the folder's guide network is incomplete; "
                                    "restore guide/ from the folder's source, or remove it (and guidance_scale from "
                                    "sampler.json)")
        guide, ginfo = TinyVideoUNet.from_pretrained(path / "guide", local_files_only=True, low_cpu_mem_usage=False,
                                                     output_loading_info=True)
        _check_weights_file(path, "guide", ginfo, "restore guide/ from the folder's source")
        guide.eval()
    defaults = _sampler_defaults(sampler, index)
    w = _check_guidance_scale(defaults["default_guidance_scale"], f"{path}'s stored guidance_scale")
    if w != 1.0 and guide is None:
        raise FileNotFoundError(f"{path} stores guidance_scale={w} (sampler.json / model_index.json) but holds no "
                                "guide/ network to guide with; restore guide/ from the folder's source, or store "
                                "a sampler without guidance (freeinit_lab.store_sampler)")
    if scheduler is None:
        import diffusers

        cls = getattr(diffusers, next(iter(stored)))
        sched = cls.from_pretrained(path / "scheduler", local_files_only=True)
        _check_sampler_settings(sampler, sched, str(path))
    else:
        sched = scheduler
    pipe = TinyVideoPipeline(unet=unet, scheduler=sched, normalizer=normalizer, guide=guide, **defaults)
    pipe.register_to_config(_name_or_path=str(path))  # as from_pretrained does: pipe.name_or_path is the folder
    pipe.set_progress_bar_config(disable=not progress)
    return pipe


def held_out_videos(pipe, n: int, seed: int) -> torch.Tensor:
    """``n`` clean videos of the distribution ``pipe``'s denoiser was made for, in its latent space.

    - a pipeline loaded from a model folder with a ``training_log.json`` (:func:`load_default_pipeline`, a retrained
      candidate): :func:`default_training_videos` of that folder with ``seed``;
    - an exact-score (analytic Gaussian) pipeline: exact draws from its prior (its denoiser's ``sample_prior``),
      seeded;
    - any other pipeline: ``ValueError`` (its training data are unknown; give the videos yourself).
    """
    n = require_int("n", n, why=" (videos to draw)")
    seed = require_seed(seed)
    folder = getattr(pipe, "name_or_path", None)
    if folder and (Path(str(folder)) / "training_log.json").exists():
        return default_training_videos(n, seed, path=folder)
    from freeinit_lab.hooks.layouts import get_denoisers

    try:
        denoisers = get_denoisers(pipe)  # at the attribute(s) the pipeline's layout names
    except AttributeError:
        denoisers = []
    prior = next((m.sample_prior for m in denoisers if callable(getattr(m, "sample_prior", None))), None)
    if prior is not None:
        return prior(n, generator=torch.Generator().manual_seed(seed))
    raise ValueError(
        f"{type(pipe).__name__} was not loaded from a model folder with a training_log.json and is not an exact-score "
        "model, so its training data are unknown: pass the reference videos (clean, in its latent space) yourself"
    )


def default_training_videos(n: int, seed: int, *, path: str | Path | None = None) -> torch.Tensor:
    """``n`` videos from exactly the distribution the default model was trained on, in its model space.

    Reads the folder's ``training_log.json`` (data generator, its version and configuration, video size) and
    ``normalizer/``, draws ``n`` videos with ``seed`` and encodes them: ``z = (x − shift) / scale`` per channel
    (identity for a model trained on raw pixels).

    Parameters
    ----------
    n : int
        Number of videos (> 0).
    seed : int
        Seed of the generator, in ``[0, 2**64 - 1]`` (a negative seed is refused: torch would read it as a large
        one). Training used seeds ``data_seed_base + step``; evaluation should use seeds far
        from that range (the toolkit uses ``>= 900_000_000``). The batch's parameters are drawn together, so
        ``default_training_videos(3, s)`` is not the first three of ``default_training_videos(5, s)``: to grow a
        set, draw the extra videos with another seed.
    path : str or Path, optional
        Model folder (default :data:`DEFAULT_MODEL_DIR`).

    Returns
    -------
    torch.Tensor
        ``(n, channel, frame, height, width)`` float32.
    """
    n = require_int("n", n, why=" (videos to draw)")
    seed = require_seed(seed)
    path = Path(path) if path is not None else DEFAULT_MODEL_DIR
    log_path = path / "training_log.json"
    if not log_path.exists():
        raise FileNotFoundError(f"{log_path} missing: the model folder must say which data it was trained on")
    log = _read_json(log_path)
    gen = log.get("data_generator")
    f, h, w = int(log["frames"]), int(log["height"]), int(log["width"])
    if gen == "dead-leaves-v1":
        from .data import dead_leaves_videos

        x = dead_leaves_videos(int(n), f, h, w, seed=int(seed), config=log.get("data_config"))
    elif gen is not None and gen.startswith("subjects-"):
        from .world import subject_videos

        x = subject_videos(int(n), f, h, w, seed=int(seed), config=log.get("data_config"), version=gen)
    else:
        raise ValueError(f"{log_path} names data generator {gen!r}, which this freeinit_lab cannot reproduce; "
                         "known: 'dead-leaves-v1', 'subjects-v1'")
    if (path / "normalizer").exists():
        x = ChannelNormalizer.from_pretrained(path / "normalizer", local_files_only=True,
                                              low_cpu_mem_usage=False).encode(x)
    elif log.get("normalization", "identity") != "identity":
        raise FileNotFoundError(f"{path} has no normalizer/ folder but was trained on normalised data")
    return x


# ----------------------------------------------------------------------------------------------------------
# analytic Gaussian prior


def fit_gaussian_prior(videos: torch.Tensor, *, symmetrize: bool = True,
                       chunk_size: int = 64) -> dict[str, torch.Tensor]:
    """Fit a stationary Gaussian video prior (per-frequency power spectrum) to videos.

    Model: ``x = μ + U y`` with ``U`` the orthogonal colour PCA basis (``3×3``), ``μ`` a constant colour and
    each decorrelated channel ``y_c`` a circular-stationary Gaussian process with power spectrum ``S_c(k)``:
    ``E|Y_c(k)|^2 = S_c(k)`` under the ortho-normalised 3-D FFT over (frame, height, width) (white unit noise has
    ``S = 1``). ``S`` is the periodogram averaged over the videos (and over their spatial and temporal
    mirror images when ``symmetrize``).

    Parameters
    ----------
    videos : torch.Tensor
        ``(N, 3, F, H, W)`` in ``[-1, 1]``.
    symmetrize : bool
        Average over horizontal/vertical flips and time reversal too (8× the effective sample count), computed
        from the one periodogram as its average over the sign patterns of the frequency.
    chunk_size : int
        Videos transformed at once (memory only; the result does not depend on it beyond float rounding).

    Returns
    -------
    dict
        ``mean`` ``(3,)``, ``color_basis`` ``(3, 3)`` (columns = PCA axes), ``power`` ``(3, F, H, W)`` float64.
    """
    if videos.ndim != 5:
        raise ValueError(f"expected (N, C, F, H, W) videos, got shape {tuple(videos.shape)}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    chunk_size = int(chunk_size)
    x = videos.double()
    mean = x.mean(dim=(0, 2, 3, 4))
    flat = (x - mean.view(1, -1, 1, 1, 1)).transpose(0, 1).reshape(x.shape[1], -1)
    cov = flat @ flat.T / flat.shape[1]
    _, basis = torch.linalg.eigh(cov)
    basis = basis.flip(-1)  # largest variance first
    power = torch.zeros(x.shape[1:], dtype=torch.float64)
    for start in range(0, x.shape[0], chunk_size):  # the periodogram summed chunk by chunk (bounded memory)
        y = torch.einsum("cd,ncfhw->ndfhw", basis, x[start:start + chunk_size] - mean.view(1, -1, 1, 1, 1))
        power += (torch.fft.fftn(y, dim=(-3, -2, -1), norm="ortho").abs() ** 2).sum(0)
    power /= x.shape[0]
    if symmetrize:
        # a mirror image x(N−1−n) has the spectrum e^{iφ(k)} X(−k), so its periodogram is P(−k): the average
        # over the 8 mirror images is the average of P over the 8 sign patterns of (k_f, k_h, k_w)
        power = torch.stack([_reverse_frequencies(power, dims) for dims in
                             [(), (-1,), (-2,), (-3,), (-1, -2), (-1, -3), (-2, -3), (-1, -2, -3)]]).mean(0)
    return dict(mean=mean.float(), color_basis=basis.float(), power=power.float())


def _reverse_frequencies(power: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``P(k) → P(−k mod N)`` along ``dims`` (FFT index order): flip, then roll by one so that 0 stays at 0."""
    if not dims:
        return power
    return torch.roll(torch.flip(power, dims), shifts=(1,) * len(dims), dims=dims)


def load_analytic_pipeline(
    num_frames: int = 8, height: int = 16, width: int | None = None, *, clips: torch.Tensor | None = None,
    scheduler=None, progress: bool = False,
) -> TinyVideoPipeline:
    """The exact Gaussian-prior reference as a :class:`TinyVideoPipeline`.

    The prior is fitted (:func:`fit_gaussian_prior`, deterministic, milliseconds) to ``clips`` — by default all
    overlapping 8-frame segments of the stored real clips (:func:`freeinit_lab.data.load_clips` with
    ``segment_step=1``) at the requested size — and wrapped in :class:`~freeinit_lab.models.GaussianVideoDenoiser`,
    whose ε-prediction is the exact posterior mean for that prior.

    Parameters
    ----------
    num_frames, height, width : int
        Video size the prior is defined on (the denoiser only accepts this size).
    clips : torch.Tensor, optional
        ``(N, 3, F, H, W)`` videos in ``[-1, 1]`` to fit instead of the stored clips.
    scheduler : SchedulerMixin, optional
        Default :func:`default_scheduler`.
    progress : bool
        Show the progress bar.
    """
    width = height if width is None else width
    num_frames, height, width = (require_int(k, v, why=" (the video size the prior is defined on)")
                                 for k, v in (("num_frames", num_frames), ("height", height), ("width", width)))
    if clips is None:
        from .data import load_clips

        clips = load_clips(num_frames, height, width, segment_step=1)
    prior = fit_gaussian_prior(clips)
    sched = scheduler if scheduler is not None else default_scheduler()
    unet = GaussianVideoDenoiser(num_frames=num_frames, sample_size=height, width=width,
                                 num_train_timesteps=sched.config.num_train_timesteps)
    unet.set_prior(prior["mean"], prior["color_basis"], prior["power"], sched.alphas_cumprod)
    pipe = TinyVideoPipeline(unet=unet.eval(), scheduler=sched)
    pipe.set_progress_bar_config(disable=not progress)
    return pipe


def load_default_analytic_pipeline(num_videos: int = 512, seed: int = 950_000_000, *,
                                   path: str | Path | None = None, clips: torch.Tensor | None = None,
                                   progress: bool = False) -> TinyVideoPipeline:
    """The exact Gaussian-prior reference of the default model's own data, in the default model's space.

    Fits :func:`fit_gaussian_prior` to ``num_videos`` videos of :func:`default_training_videos` (model space,
    so unit variance per channel for a normalised model), and wraps the exact posterior-mean denoiser
    (:class:`~freeinit_lab.models.GaussianVideoDenoiser`) in a pipeline with the default model's scheduler,
    stored step count and normaliser, so that every closed form of the Gaussian model applies exactly to a
    pipeline that is interchangeable with :func:`load_default_pipeline` (same shapes, same sampler, same decoding).
    A stored ε-scaling or autoguidance (``eps_scale``, ``guidance_scale`` in ``sampler.json``) is not carried over:
    both correct a trained network's error, and the exact score has none (its ``default_eps_scale`` and
    ``default_guidance_scale`` are 1).

    Parameters
    ----------
    num_videos : int
        Videos the power spectrum is averaged over (>= 2, as for ``clips``; with the 8 flips of
        :func:`fit_gaussian_prior`).
    seed : int
        Seed of those videos (default far from the training seeds).
    path : str or Path, optional
        Model folder (default :data:`DEFAULT_MODEL_DIR`).
    clips : torch.Tensor, optional
        ``(N >= 2, C, F, H, W)`` model-space videos of the default model's size to fit instead of drawing
        ``num_videos`` with ``seed`` (then both are ignored), e.g. held-out :func:`default_training_videos` that
        are used elsewhere too, so they are drawn once.
    progress : bool
        Show the progress bar.
    """
    if clips is None:
        num_videos = require_int("num_videos", num_videos, low=2,
                                 why=" (videos the prior's power spectrum is averaged over, as for clips=)")
        seed = require_seed(seed)
    base = load_default_pipeline(path, progress=progress)
    _, f, h, w = base.sample_shape
    if clips is None:
        clips = default_training_videos(num_videos, seed=seed, path=path)
    elif (not isinstance(clips, torch.Tensor) or clips.dim() != 5 or clips.shape[0] < 2
          or tuple(clips.shape[1:]) != tuple(base.sample_shape)):
        raise ValueError(
            f"clips has shape {tuple(getattr(clips, 'shape', ()))}; expected (N >= 2, "
            f"{', '.join(map(str, base.sample_shape))}): model-space videos of the default model's size, e.g. "
            "default_training_videos(n, seed)"
        )
    prior = fit_gaussian_prior(clips)
    sched = base.scheduler
    unet = GaussianVideoDenoiser(in_channels=clips.shape[1], num_frames=f, sample_size=h, width=w,
                                 num_train_timesteps=sched.config.num_train_timesteps)
    unet.set_prior(prior["mean"], prior["color_basis"], prior["power"], sched.alphas_cumprod)
    pipe = TinyVideoPipeline(unet=unet.eval(), scheduler=sched, normalizer=base.normalizer,
                             default_num_inference_steps=base.default_num_inference_steps,
                             default_eta=base.default_eta)
    pipe.set_progress_bar_config(disable=not progress)
    return pipe
