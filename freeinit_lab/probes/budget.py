"""A probe's memory budget: how many bytes a capture needs, refused before sampling when it does not fit."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

__all__ = ["ProbeBudgetError", "estimate_capture_bytes"]


class ProbeBudgetError(MemoryError):
    """A capture would exceed the probe's ``max_bytes`` budget; raised before sampling starts."""


def _steps_kept(num_steps: int, every: int) -> int:
    if num_steps <= 0:
        return 0
    kept = (num_steps - 1) // every + 1
    return kept + (1 if (num_steps - 1) % every else 0)


def estimate_capture_bytes(
    latent_shape: Sequence[int],
    steps_per_pass: Sequence[int] | int,
    *,
    capture: Sequence[str] = ("latents", "x0_pred"),
    mode: str = "full",
    dtype: torch.dtype | str = torch.float32,
    every: int = 1,
    num_bands: int = 6,
) -> int:
    """Bytes a probe record needs for the given sampling passes.

    Parameters
    ----------
    latent_shape
        Canonical latent shape ``(batch, channel, frame, height, width)``.
    steps_per_pass
        Denoising steps of each pass (an int for a single pass).
    capture, mode, dtype, every, num_bands
        As in :class:`LatentProbe`.

    Returns
    -------
    int
        Bytes of the data variables (coords add a few bytes per step).
    """
    if isinstance(steps_per_pass, (int, np.integer)):
        steps_per_pass = [int(steps_per_pass)]
    b, c = int(latent_shape[0]), int(latent_shape[1])
    if mode == "band_power":
        per_step = b * c * num_bands * 8
    else:
        per_step = math.prod(int(s) for s in latent_shape) * _as_dtype(dtype).itemsize
    steps = sum(_steps_kept(int(n), every) for n in steps_per_pass)
    return int(steps * per_step * len(capture))


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _as_dtype(dtype: torch.dtype | str | np.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        out = dtype
    else:
        out = {"float32": torch.float32, "float16": torch.float16}.get(str(np.dtype(dtype)), None)
    if out not in (torch.float32, torch.float16):
        raise ValueError(f"dtype must be torch.float32 (default) or torch.float16; got {dtype!r}")
    return out
