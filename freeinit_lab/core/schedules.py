"""Forward diffusion of any diffusers scheduler, in one form: ``z_t = a_t * z_0 + b_t * eps``.

Three families cover diffusers' schedulers. The family is read from what a scheduler *does* — its config and
methods — never from its class name, so a user's subclass (or a renamed copy) of any of them is read the same:

- ``"flow"``: rectified flow, ``a_t = 1 - sigma_t``, ``b_t = sigma_t`` with the scheduler's (static) shift;
  timesteps ``sigma * 1000``; so ``a_T = 1 - sigma_max`` and ``b_T = sigma_max``. Recognised by
  ``config.use_flow_sigmas`` (Wan's ``UniPCMultistepScheduler(use_flow_sigmas=True)``, DPM-Solver, DEIS,
  SA-Solver; shift ``flow_shift``), ``prediction_type == "flow_prediction"``, or a ``scale_noise`` forward
  process without ``alphas_cumprod`` (``FlowMatchEulerDiscreteScheduler`` and its Heun/LCM siblings; shift
  ``shift``). This test comes first: flow-sigma schedulers also carry DDPM betas they never use.
- ``"ddpm"``: every other scheduler with ``alphas_cumprod`` (DDPM, DDIM, PNDM, Euler, Euler-ancestral, Heun,
  LMS, DPM-Solver, UniPC, DEIS, LCM, TCD, CogVideoX's DDIM/DPM, …; Karras/exponential/beta *sampling* sigmas do
  not change the training process), including ``rescale_betas_zero_snr=True``: ``a_t = sqrt(alphabar_t)``,
  ``b_t = sqrt(1 - alphabar_t)`` on the integer training timesteps.
- ``"edm"``: EDM sigma schedules, recognised by an EDM config (``sigma_min``, ``sigma_max``, ``sigma_data``)
  without ``alphas_cumprod`` (``EDMEulerScheduler``, ``EDMDPMSolverMultistepScheduler``,
  ``CMStochasticIterativeScheduler``): the model sees ``x_0 + sigma * eps``; we use the variance-preserving
  normalisation ``a = 1 / sqrt(1 + sigma^2)``, ``b = sigma / sqrt(1 + sigma^2)`` (same SNR ``1 / sigma^2``),
  which is the scale of the ``latents=`` a pipeline takes before it multiplies them by
  ``scheduler.init_noise_sigma``. Timesteps are the sigmas themselves, on a 1000-point geometric grid from
  ``sigma_min`` to ``sigma_max``.

Anything else (TrigFlow/sCM, variance-exploding Karras-VE, schedulers that expose none of the above) is refused
with the reason, never read as DDPM.

For every family the coefficients are in the scale a pipeline's ``latents=`` argument expects, so
``diffuse(z0, schedule.terminal_timestep, noise)`` is directly FreeInit's ``z_T``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["NoiseSchedule", "get_schedule", "SUPPORTED_SCHEDULERS"]

SUPPORTED_SCHEDULERS = (
    "schedulers with `alphas_cumprod` (DDPM, DDIM, PNDM, Euler, EulerAncestral, Heun, LMS, DPMSolver, UniPC, DEIS, "
    "LCM, TCD, CogVideoXDDIM/DPM; rescale_betas_zero_snr supported), EDM sigma schedulers (config sigma_min, "
    "sigma_max, sigma_data: EDMEuler, EDMDPMSolverMultistep) and flow matching (use_flow_sigmas=True, "
    "prediction_type='flow_prediction' or a scale_noise forward process: FlowMatchEulerDiscrete/Heun/LCM, "
    "UniPC/DPMSolver with use_flow_sigmas; static shift or shift=…), subclasses included"
)

#: The forward-process families a NoiseSchedule describes (module docstring).
FAMILIES = ("ddpm", "edm", "flow")

#: Below this terminal SNR (-60 dB) a schedule is treated as carrying no signal at t = T. Zero-terminal-SNR
#: schedulers end at exactly 0 (DDIM) or clamp alphabar_T to 2**-24 (Euler, about -72 dB).
TERMINAL_SIGNAL_THRESHOLD = 1e-6


def _config_of(obj: Any) -> dict:
    config = getattr(obj, "config", obj)
    return dict(config) if isinstance(config, Mapping) else {}


def _family_of(scheduler: Any, config: Mapping) -> str | None:
    """The forward-process family of a scheduler (object or config), from its config and methods, or None.

    Order matters: schedulers such as ``UniPCMultistepScheduler(use_flow_sigmas=True)`` carry ``alphas_cumprod``
    (from betas they never use), so the flow tests come before the DDPM one.
    """
    is_config = isinstance(scheduler, Mapping)
    has_alphas = (not is_config) and getattr(scheduler, "alphas_cumprod", None) is not None
    if config.get("use_flow_sigmas") or config.get("prediction_type") == "flow_prediction":
        return "flow"
    if not has_alphas and callable(getattr(scheduler, "scale_noise", None)):
        return "flow"  # the FlowMatch* forward process: (1 - sigma) x0 + sigma eps
    if has_alphas:
        return "ddpm"
    if {"sigma_min", "sigma_max", "sigma_data"} <= config.keys() and config.get("prediction_type") != "trigflow":
        return "edm"
    if is_config:
        keys = set(config)
        if {"shift", "use_dynamic_shifting"} <= keys and not {"beta_start", "beta_end"} & keys:
            return "flow"  # a saved FlowMatch config
        if {"beta_start", "beta_end", "beta_schedule"} <= keys:
            return "ddpm"
    return None


def _why_unsupported(name: str, config: Mapping) -> str:
    if config.get("prediction_type") == "trigflow":
        return (
            f"unsupported scheduler {name}: it samples a TrigFlow model (prediction_type='trigflow', "
            "z_t = cos(t) x0 + sin(t) eps), a forward process freeinit_lab does not model. "
        )
    return (
        f"unsupported scheduler {name}: cannot tell its forward process — it has no `alphas_cumprod` (DDPM "
        "family), no flow-matching config or method (use_flow_sigmas, prediction_type='flow_prediction', "
        "scale_noise) and no EDM config (sigma_min, sigma_max, sigma_data). "
    )


def _ddpm_from_config(config: Mapping) -> Any:
    """A DDPMScheduler with the config's beta options: every alphas_cumprod scheduler derives it from them."""
    import diffusers

    accepted = _accepted_keys("DDPMScheduler")
    return diffusers.DDPMScheduler.from_config({k: v for k, v in config.items() if k in accepted})


def _instantiate(config: Mapping) -> Any:
    import diffusers

    name = config.get("_class_name")
    cls = getattr(diffusers, name, None) if name is not None else None
    if cls is not None and hasattr(cls, "from_config"):
        return cls.from_config(dict(config))
    family = _family_of(config, config)
    if family == "ddpm":
        # A live scheduler's `config` carries no class name, and a saved config may name a user's own class:
        # DDPMScheduler reproduces alphas_cumprod from the same beta options.
        return _ddpm_from_config(config)
    if family is None:
        label = f"scheduler class {name!r}" if name else f"a config with keys {sorted(config)}"
        raise ValueError(
            f"cannot tell the scheduler family of {label}; pass the scheduler object itself (e.g. pipe.scheduler). "
            f"Supported: {SUPPORTED_SCHEDULERS}"
        )
    return None  # flow / EDM: read from the config alone


def _accepted_keys(name: str) -> set[str]:
    import inspect

    import diffusers

    return set(inspect.signature(getattr(diffusers, name).__init__).parameters)


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Signal and noise coefficients of a scheduler's training forward process, ``z_t = a_t z_0 + b_t eps``.

    Build it with :meth:`from_scheduler` (or :func:`get_schedule`). Arrays run along the training grid in
    order of increasing noise; the last entry is the terminal timestep ``T`` that FreeInit diffuses to.

    Attributes
    ----------
    family
        ``"ddpm"``, ``"edm"`` or ``"flow"`` (see the module docstring).
    timesteps
        Training timesteps (float64), increasing noise.
    alpha, sigma
        ``a_t`` and ``b_t`` (float64) at each timestep.
    scheduler_class
        Name of the diffusers scheduler class it was built from.
    config
        The scheduler's config as a plain dict.
    """

    family: str
    timesteps: np.ndarray
    alpha: np.ndarray
    sigma: np.ndarray
    scheduler_class: str = ""
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # built by hand (the docs suggest it for other forward processes), so checked here: a decreasing grid (a
        # sampler's timesteps) made T the *least* noisy step, arrays of other lengths or lists failed only at the
        # first lookup, and an unknown family was read as a continuous one
        if self.family not in FAMILIES:
            raise ValueError(f"family={self.family!r}; use one of {', '.join(map(repr, FAMILIES))} (module docstring)")
        arrays = {}
        for name in ("timesteps", "alpha", "sigma"):
            value = getattr(self, name)
            try:
                arr = np.array(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"NoiseSchedule {name} must be a 1-D array of numbers; got {type(value).__name__}") from exc
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(f"NoiseSchedule {name} must be a non-empty 1-D array; got shape {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"NoiseSchedule {name} holds NaN or inf values")
            arrays[name] = arr
        sizes = {k: v.size for k, v in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"NoiseSchedule timesteps, alpha and sigma must have one entry per timestep; got sizes {sizes}")
        if not bool(np.all(np.diff(arrays["timesteps"]) > 0)):
            raise ValueError(
                "NoiseSchedule timesteps must strictly increase (in order of increasing noise; the last entry is the "
                "terminal timestep T FreeInit diffuses to); a sampler's timesteps run the other way: reverse "
                "timesteps, alpha and sigma together ([::-1])"
            )
        if bool((arrays["alpha"] < 0).any()) or bool((arrays["sigma"] < 0).any()):
            raise ValueError("NoiseSchedule alpha (a_t) and sigma (b_t) must be >= 0")
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_scheduler(cls, scheduler: Any, *, shift: float | None = None) -> "NoiseSchedule":
        """Read the training forward process of a diffusers scheduler (object or config dict).

        Parameters
        ----------
        scheduler
            A scheduler instance (e.g. ``pipe.scheduler``), its ``config`` (with ``_class_name``), or a
            :class:`NoiseSchedule` (returned unchanged).
        shift
            Flow matching only: the timestep shift to use. Required when the scheduler uses resolution-dependent
            ("dynamic") shifting, where the shift is ``exp(mu)`` for the ``mu`` the pipeline computes.

        Raises
        ------
        ValueError
            For a scheduler outside the supported families, naming it and what is supported.
        """
        if isinstance(scheduler, NoiseSchedule):
            return scheduler
        if isinstance(scheduler, Mapping):
            config = dict(scheduler)
            name = str(config.get("_class_name") or "")
            family = _family_of(config, config)
            if family is None:  # a diffusers class named in the config may still tell (else this raises)
                return cls.from_scheduler(_instantiate(config), shift=shift)
            if family == "ddpm":
                scheduler = _instantiate(config)
                name = name or type(scheduler).__name__
        else:
            name = type(scheduler).__name__
            config = _config_of(scheduler)
            family = _family_of(scheduler, config)
        plain = {k: v for k, v in config.items() if not k.startswith("_")}
        if family == "flow":
            return cls._flow(scheduler, name, plain, shift)
        if family == "ddpm":
            alphas_cumprod = torch.as_tensor(scheduler.alphas_cumprod).detach().cpu().to(torch.float64).numpy()
            timesteps = np.arange(alphas_cumprod.size, dtype=np.float64)
            return cls("ddpm", timesteps, np.sqrt(alphas_cumprod), np.sqrt(1.0 - alphas_cumprod), name, plain)
        if family == "edm":
            try:
                sigma_min, sigma_max = float(config["sigma_min"]), float(config["sigma_max"])
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"{name}: an EDM scheduler needs numeric sigma_min and sigma_max in its config; got "
                    f"{config.get('sigma_min')!r}, {config.get('sigma_max')!r}"
                ) from exc
            if not 0 < sigma_min < sigma_max:
                raise ValueError(f"{name}: EDM sigmas must satisfy 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
            sigma = np.geomspace(sigma_min, sigma_max, 1000)
            norm = np.sqrt(1.0 + sigma**2)
            return cls("edm", sigma.copy(), 1.0 / norm, sigma / norm, name, plain)
        raise ValueError(
            _why_unsupported(name, config) + f"freeinit_lab supports {SUPPORTED_SCHEDULERS}. For another forward "
            "process, build NoiseSchedule(family, timesteps, alpha, sigma) yourself and pass it instead."
        )

    @classmethod
    def _flow(cls, scheduler: Any, name: str, config: dict, shift: float | None) -> "NoiseSchedule":
        n = int(config.get("num_train_timesteps", 1000))
        if shift is None:
            if config.get("use_dynamic_shifting", False):
                raise ValueError(
                    f"{name} uses resolution-dependent (dynamic) shifting, so its training sigmas depend on the "
                    "image size; pass shift=math.exp(mu) with the mu your pipeline computes (e.g. from "
                    "diffusers' calculate_shift), or shift=1.0 for the unshifted schedule"
                )
            # FlowMatch* call it `shift`; the multistep solvers with use_flow_sigmas call it `flow_shift`
            key = "flow_shift" if config.get("use_flow_sigmas") and "flow_shift" in config else "shift"
            shift = config.get(key, 1.0)
            shift = 1.0 if shift is None else float(shift)
        shift = float(shift)
        if not (shift > 0 and math.isfinite(shift)):
            raise ValueError(f"shift must be a finite number > 0; got {shift}")
        sigma = np.linspace(1, n, n, dtype=np.float64) / n
        sigma = shift * sigma / (1 + (shift - 1) * sigma)
        return cls("flow", sigma * n, 1.0 - sigma, sigma, name, {**config, "shift": shift})

    # -- lookup ---------------------------------------------------------------------------------------------------
    @property
    def terminal_timestep(self) -> float:
        """The last (noisiest) training timestep ``T``, e.g. 999 for a 1000-step DDPM schedule."""
        return float(self.timesteps[-1])

    @property
    def terminal_snr(self) -> float:
        """``a_T^2 / b_T^2`` at the terminal timestep (0 for zero-terminal-SNR and flow matching)."""
        return float(self.snr(self.terminal_timestep))

    @property
    def has_terminal_signal(self) -> bool:
        """Whether the training ``z_T`` still carries signal (SNR above -60 dB): FreeInit's premise."""
        return self.terminal_snr > TERMINAL_SIGNAL_THRESHOLD

    def _index(self, t: np.ndarray) -> np.ndarray | None:
        """Exact positions of ``t`` on the training grid, or None if any is off the grid."""
        grid = self.timesteps
        pos = np.clip(np.searchsorted(grid, t), 0, grid.size - 1)
        lower = np.clip(pos - 1, 0, grid.size - 1)
        pick = np.where(np.abs(grid[lower] - t) < np.abs(grid[pos] - t), lower, pos)
        hit = np.abs(grid[pick] - t) <= 1e-6 * np.maximum(1.0, np.abs(t))
        return pick if hit.all() else None

    def coefficients(self, t) -> tuple[np.ndarray, np.ndarray]:
        """``(a_t, b_t)`` at timestep(s) ``t`` (scalar, array or tensor).

        DDPM-family timesteps must be integers of the training grid. Continuous families (EDM, flow) are
        interpolated linearly between grid points. Every timestep must be finite (NaN and inf are refused).
        """
        t_arr = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
        lo, hi = self.timesteps[0], self.timesteps[-1]
        if not np.isfinite(t_arr).all():
            raise ValueError(
                f"timestep(s) {t_arr.ravel()[~np.isfinite(t_arr.ravel())][:5].tolist()} are not finite; pass "
                f"timesteps in the training range [{lo:g}, {hi:g}] of {self.scheduler_class or self.family}"
            )
        if np.any(t_arr < lo - 1e-6 * max(1.0, abs(lo))) or np.any(t_arr > hi + 1e-6 * max(1.0, abs(hi))):
            raise ValueError(
                f"timestep(s) {t_arr.ravel()[:5].tolist()} outside the training range [{lo:g}, {hi:g}] of "
                f"{self.scheduler_class or self.family}"
            )
        index = self._index(t_arr)
        if index is not None:
            return self.alpha[index], self.sigma[index]
        if self.family == "ddpm":
            raise ValueError(
                f"timestep(s) {t_arr.ravel()[:5].tolist()} are not integer training timesteps of "
                f"{self.scheduler_class}; use integers in [0, {int(hi)}]"
            )
        return np.interp(t_arr, self.timesteps, self.alpha), np.interp(t_arr, self.timesteps, self.sigma)

    def step_coefficients(self, t) -> tuple[np.ndarray, np.ndarray]:
        """``(a_t, b_t)`` of the noise level at a sampler's timesteps ``t``, NaN where ``t`` is not finite or unknown.

        Unlike :meth:`coefficients` this never raises: DDPM-family timesteps off the training grid give NaN, and
        flow matching reads the sampler's own ``sigma = t / num_train_timesteps`` (whatever shift the sampler
        used), so ``a = 1 - sigma``, ``b = sigma``.
        """
        t = np.asarray(t, dtype=np.float64)
        a = np.full(t.shape, np.nan)
        b = np.full(t.shape, np.nan)
        ok = np.isfinite(t)
        if self.family == "flow":
            n = float(self.config.get("num_train_timesteps", 1000))
            b[ok] = t[ok] / n
            a[ok] = 1.0 - b[ok]
            return a, b
        for idx in np.flatnonzero(ok):
            try:
                ai, bi = self.coefficients(t.flat[idx])
                a.flat[idx], b.flat[idx] = float(ai), float(bi)
            except ValueError:
                pass
        return a, b

    def x0_from_output(self, model_output: torch.Tensor, sample: torch.Tensor, t: float,
                       prediction_type: str = "epsilon",
                       coefficients: tuple[float, float] | None = None) -> torch.Tensor | None:
        """The clean latent a denoiser's output implies at step input ``sample`` (``z_t``) and timestep ``t``.

        ``epsilon``: ``(z - b eps) / a``; ``v_prediction``: ``a z - b v``; ``sample``: the output itself; flow
        matching (``z = (1 - s) x0 + s eps``, ``v = eps - x0``): ``z - s v``. None where it cannot be told (EDM-style
        families, whose samplers return ``pred_original_sample`` themselves; unknown coefficients; ``a = 0``).
        ``coefficients`` ``(a, b)`` overrides the training coefficients at ``t`` (a sampler whose own noise level
        is off the training grid, e.g. Karras sigmas).
        """
        if coefficients is not None:
            a, b = (float(v) for v in coefficients)
        else:
            a, b = (float(v[0]) for v in self.step_coefficients(np.array([t], dtype=np.float64)))
        if not (math.isfinite(a) and math.isfinite(b)):
            return None
        m, z = model_output.float(), sample.float()
        if self.family == "flow":
            return z - b * m
        if self.family != "ddpm":
            return None
        if prediction_type == "epsilon":
            return (z - b * m) / a if a > 0 else None
        if prediction_type == "v_prediction":
            return a * z - b * m
        if prediction_type == "sample":
            return m
        return None

    def snr(self, t) -> np.ndarray:
        """``SNR(t) = a_t^2 / b_t^2`` (linear; ``inf`` where ``b_t = 0``)."""
        a, b = self.coefficients(t)
        with np.errstate(divide="ignore"):
            return a**2 / b**2

    def snr_db(self, t) -> np.ndarray:
        """``10 log10 SNR(t)`` in dB (``-inf`` where the schedule carries no signal)."""
        with np.errstate(divide="ignore"):
            return 10 * np.log10(self.snr(t))

    def diffuse(self, z0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """Sample the training marginal ``q(z_t | z_0)``: ``a_t * z0 + b_t * noise``.

        Parameters
        ----------
        z0
            Clean latents, any shape; the first dim is the batch when ``t`` is per-sample.
        t
            A scalar timestep, or a 1-D sequence/tensor of one timestep per batch element.
        noise
            Gaussian noise of the same shape as ``z0`` (pass it explicitly: nothing here draws random numbers).

        Returns
        -------
        torch.Tensor
            ``z_t`` in the dtype of ``z0``; coefficients are rounded to that dtype as diffusers' ``add_noise``
            does.
        """
        if not isinstance(z0, torch.Tensor) or not isinstance(noise, torch.Tensor):
            raise TypeError("z0 and noise must be torch tensors")
        if z0.shape != noise.shape:
            raise ValueError(f"z0 {tuple(z0.shape)} and noise {tuple(noise.shape)} must have the same shape")
        if not z0.is_floating_point():
            # the coefficients are rounded to z0's dtype: an integer dtype would truncate them to 0
            raise TypeError(f"z0 must be a floating-point tensor; got {z0.dtype} (pass z0.float())")
        a, b = self.coefficients(t)
        a = torch.as_tensor(np.asarray(a), dtype=z0.dtype, device=z0.device)
        b = torch.as_tensor(np.asarray(b), dtype=z0.dtype, device=z0.device)
        if a.dim() == 1:
            if a.numel() != z0.shape[0]:
                raise ValueError(f"got {a.numel()} timesteps for a batch of {z0.shape[0]}; pass one per sample or a scalar")
            a = a.reshape(-1, *([1] * (z0.dim() - 1)))
            b = b.reshape(-1, *([1] * (z0.dim() - 1)))
        elif a.dim() > 1:
            raise ValueError("t must be a scalar or a 1-D sequence of per-sample timesteps")
        return a * z0 + b * noise.to(z0.dtype)

    def to_dataset(self):
        """The schedule as an ``xarray.Dataset`` over ``timestep`` (alpha, sigma, snr_db)."""
        import xarray as xr

        with np.errstate(divide="ignore"):
            snr_db = 10 * np.log10(self.alpha**2 / self.sigma**2)
        return xr.Dataset(
            {
                "alpha": ("timestep", self.alpha, {"long_name": "signal coefficient a_t"}),
                "sigma": ("timestep", self.sigma, {"long_name": "noise coefficient b_t"}),
                "snr_db": ("timestep", snr_db, {"long_name": "SNR a_t^2 / b_t^2", "units": "dB"}),
            },
            coords={"timestep": self.timesteps},
            attrs={"family": self.family, "scheduler_class": self.scheduler_class},
        )

    def __repr__(self) -> str:
        snr = self.terminal_snr
        snr_txt = "-inf dB" if snr == 0 else f"{10 * math.log10(snr):.2f} dB"
        return (
            f"NoiseSchedule({self.scheduler_class or self.family}, family={self.family!r}, "
            f"{self.timesteps.size} training steps, T={self.terminal_timestep:g}, terminal SNR {snr_txt})"
        )


def get_schedule(scheduler: Any, *, shift: float | None = None) -> NoiseSchedule:
    """Shorthand for :meth:`NoiseSchedule.from_scheduler`; also accepts a pipeline (uses its scheduler:
    ``pipe.scheduler``, or the attribute its :class:`~freeinit_lab.hooks.layouts.LatentLayout` names)."""
    if _is_pipeline(scheduler):
        # core looks a layer up only here and in snr._latent_channels: where a pipeline keeps its scheduler and
        # its denoiser is the adapter table's to say
        from freeinit_lab.hooks.layouts import get_scheduler

        scheduler = get_scheduler(scheduler)
    return NoiseSchedule.from_scheduler(scheduler, shift=shift)


def _is_pipeline(obj: Any) -> bool:
    """A pipeline rather than a scheduler, its config or a NoiseSchedule: callable (or has ``components``), no
    ``step``."""
    if isinstance(obj, (Mapping, NoiseSchedule, type)) or callable(getattr(obj, "step", None)):
        return False
    return hasattr(obj, "components") or callable(obj)


def _warn_no_gap(schedule: NoiseSchedule, stacklevel: int = 3) -> None:
    """Warn that a schedule's training z_T carries no signal, so there is no initialization gap."""
    warnings.warn(
        f"{schedule.scheduler_class or schedule.family}: the training z_T carries no signal (terminal SNR "
        f"{schedule.terminal_snr:.3g}); there is no initialization gap for FreeInit to close on this model",
        UserWarning,
        stacklevel=stacklevel,
    )
