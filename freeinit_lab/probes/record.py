"""What a probe record holds: capture sites and their attributes, plain-value metadata, band power per step."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import numpy as np
import torch

from freeinit_lab.core.dims import BAND_RECORD_DIMS, RECORD_DIMS, band_coords
from freeinit_lab.core.spectral import default_band_edges
from freeinit_lab.probes.budget import _fmt_bytes

__all__ = ["CAPTURE_SITES", "RECORD_VERSION"]


#: Names of the capture sites, in record order.
CAPTURE_SITES: tuple[str, ...] = ("latents", "latents_in", "x0_pred", "model_output")


#: Version of the record layout written to ``attrs["record_version"]``.
RECORD_VERSION = 1


_SITE_ATTRS: dict[str, dict[str, str]] = {
    "latents": {
        "long_name": "latent after the scheduler step",
        "description": "z at the next step's noise level (clean after the last step); after a user callback",
    },
    "latents_in": {
        "long_name": "latent entering the scheduler step",
        "description": "z_t at this step's timestep (step 0: the pass's initial noise)",
    },
    "x0_pred": {
        "long_name": "predicted clean latent",
        "description": "the scheduler's pred_original_sample, else computed from the schedule and model output",
    },
    "model_output": {
        "long_name": "model output",
        "description": "the (guided) denoiser output handed to the scheduler step",
    },
}


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-serialisable summary of a call argument or config value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return _jsonable(value.item())
    if isinstance(value, torch.Tensor):
        return f"<tensor {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}>"
    if isinstance(value, np.ndarray):
        return f"<array {value.shape} {value.dtype}>" if value.size > 16 else _jsonable(value.tolist())
    if isinstance(value, torch.Generator):
        return {"generator_seed": int(value.initial_seed())}
    if isinstance(value, (list, tuple)) and depth < 3:
        if len(value) > 64:
            return f"<{type(value).__name__} of {len(value)}>"
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, Mapping) and depth < 3:
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if callable(value):
        return f"<callable {getattr(value, '__qualname__', type(value).__name__)}>"
    return f"<{type(value).__name__}>"


def _config_json(config: Mapping) -> str:
    """A scheduler's config as JSON that every process writes alike: keys sorted, and diffusers'
    ``_use_default_values`` (the keys left at their defaults, which diffusers collects from a set, so their order
    follows the process's string hashing, ``PYTHONHASHSEED``) sorted too. Two identical runs write identical attrs;
    the list itself is kept, as ``SchedulerClass.from_config`` reads it."""
    config = dict(config)
    defaults = config.get("_use_default_values")
    if isinstance(defaults, (list, tuple, set, frozenset)):
        config["_use_default_values"] = sorted(str(k) for k in defaults)
    return json.dumps(_jsonable(config), sort_keys=True)


def _plain_attr(value: Any) -> Any:
    """A value NetCDF and zarr both store as an attribute unchanged (no bool, no None)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    return json.dumps(_jsonable(value))


def _seed_of(generator: Any) -> int | list[int] | None:
    if isinstance(generator, torch.Generator):
        return int(generator.initial_seed())
    if isinstance(generator, (list, tuple)) and generator and all(isinstance(g, torch.Generator) for g in generator):
        return [int(g.initial_seed()) for g in generator]
    return None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _step_band_power(x: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """:func:`freeinit_lab.spectral.band_power` of one step, lean enough for the sampling loop.

    Same definition and the same cached band projection as ``band_power`` (mean ortho-FFT power per bin of each
    band, from the half spectrum with the bins' multiplicities), but the edges are validated once per record
    instead of per call, ``|X|^2`` is formed in float32 (float64 accumulation; relative difference ~1e-7), and
    NaN/inf values are recorded rather than refused, so a diverging sampler is observed, not interrupted.
    """
    from freeinit_lab.core.spectral import _band_projection, band_power

    shape3 = tuple(int(s) for s in x.shape[-3:])
    try:
        proj = _band_projection(shape3, tuple(float(e) for e in edges), 1.0)
    except Exception:  # noqa: BLE001 - fall back to the public kernel (validates, explains)
        return band_power(x.float(), edges=edges).cpu()
    spectrum = torch.fft.rfftn(x.float(), dim=(-3, -2, -1), norm="ortho")
    power = torch.view_as_real(spectrum).square().sum(-1)
    return (power.reshape(*x.shape[:-3], -1).double() @ proj.to(power.device)).cpu()


class _FullRecorder:
    """``mode="full"``: each kept step's whole latent, copied to CPU in the probe's dtype."""

    mode = "full"
    dims = RECORD_DIMS

    def __init__(self, dtype: torch.dtype, num_bands: int, band_edges: np.ndarray | None) -> None:
        self.dtype = dtype
        self.edges: np.ndarray | None = None

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype_name)

    def store(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=self.dtype)
        out.copy_(x)  # a copy: the pipeline may change its tensors in place later
        return out

    def shape_changed(self, shape: tuple[int, ...], item_shape: tuple[int, ...]) -> bool:
        return tuple(shape) != tuple(item_shape[: len(shape)])

    def var_attrs(self, site: str) -> dict[str, str]:
        return dict(_SITE_ATTRS[site])

    def attrs(self) -> dict[str, Any]:
        return {}

    def band_coords(self) -> dict[str, tuple]:
        return {}

    def cheaper_dtype(self, estimate) -> str | None:
        """A smaller-dtype option for a budget refusal (``estimate(**overrides)`` gives its bytes)."""
        if self.dtype == torch.float16:
            return None
        return f"dtype=torch.float16 (~{_fmt_bytes(estimate(mode='full', dtype=torch.float16))})"

    def cheaper_mode(self, estimate) -> str | None:
        return f"mode='band_power' (~{_fmt_bytes(estimate(mode='band_power', dtype=torch.float32))})"


class _BandPowerRecorder(_FullRecorder):
    """``mode="band_power"``: the mean power of each radial band per (batch, channel), float64."""

    mode = "band_power"
    dims = BAND_RECORD_DIMS

    def __init__(self, dtype: torch.dtype, num_bands: int, band_edges: np.ndarray | None) -> None:
        super().__init__(dtype, num_bands, band_edges)
        self.num_bands, self.band_edges = num_bands, band_edges

    @property
    def dtype_name(self) -> str:
        return "float64"

    def store(self, x: torch.Tensor) -> torch.Tensor:
        if self.edges is None:
            edges = self.band_edges if self.band_edges is not None else default_band_edges(x.shape, self.num_bands)
            self.edges = np.asarray(edges, dtype=np.float64)
        return _step_band_power(x, self.edges)

    def shape_changed(self, shape: tuple[int, ...], item_shape: tuple[int, ...]) -> bool:
        return super().shape_changed(shape, item_shape) and tuple(shape[:2]) != tuple(item_shape[:2])

    def var_attrs(self, site: str) -> dict[str, str]:
        return {**_SITE_ATTRS[site], "long_name": "band power of the " + _SITE_ATTRS[site]["long_name"],
                "units": "power per bin (white unit noise = 1)"}

    def attrs(self) -> dict[str, Any]:
        return {
            "num_bands": len(self.edges) - 1 if self.edges is not None else self.num_bands,
            "band_power_convention": (
                "mean |ortho-normalised 3D FFT over (frame, height, width)|^2 per bin of each radial band "
                "(white unit-variance noise -> 1)"
            ),
        }

    def band_coords(self) -> dict[str, tuple]:
        if self.edges is None:
            return {}
        return band_coords(self.edges)

    def cheaper_dtype(self, estimate) -> str | None:
        return None

    def cheaper_mode(self, estimate) -> str | None:
        return None


#: one recorder class per ``LatentProbe(mode=...)``
RECORDERS = {"full": _FullRecorder, "band_power": _BandPowerRecorder}
