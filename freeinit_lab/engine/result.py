"""What :func:`freeinit_lab.engine.loop.freeinit` returns: one record per pass and the run's result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from freeinit_lab.core.dims import ITERATION_DIMS as _ITER_DIMS
from freeinit_lab.core.schedules import NoiseSchedule
from freeinit_lab.hooks.layouts import LatentLayout

__all__ = ["FreeInitIteration", "FreeInitResult"]


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
