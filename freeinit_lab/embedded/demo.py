"""Print the initialization gap of the default data as a band-SNR table: ``python -m freeinit_lab.embedded.demo``.

Uses the real clips shipped in ``data/`` when :func:`freeinit_lab.data.load_clips` is available, and says so;
otherwise a deterministic synthetic smooth video (and says that instead).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from freeinit_lab.core.schedules import get_schedule
from freeinit_lab.core.snr import SNR_CONVENTION, band_snr, initialization_gap


def _default_videos() -> tuple[torch.Tensor, str]:
    try:
        from freeinit_lab.embedded.data import load_clips  # the embedded default data (issue 5)

        clips = load_clips()
        videos = clips[0] if isinstance(clips, tuple) else clips
        if hasattr(videos, "values") and not isinstance(videos, torch.Tensor):
            videos = torch.as_tensor(np.asarray(videos.values))
        return videos.float(), "real clips from data/ (freeinit_lab.load_clips)"
    except (ImportError, FileNotFoundError, AttributeError):
        g = torch.Generator().manual_seed(0)
        from freeinit_lab.core.spectral import apply_lowpass, lowpass_filter

        x = torch.randn(4, 3, 8, 32, 32, generator=g)
        x = 0.2 + 2 * apply_lowpass(x, lowpass_filter(x.shape, "gaussian", 0.15, 0.3))
        return x, "synthetic smooth videos (the real clips are not installed)"


def _schedulers() -> dict:
    import diffusers

    sd = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    return {
        "SD scaled-linear (AnimateDiff, ModelScope, VideoCrafter)": diffusers.DDIMScheduler(**sd),
        "zero-terminal-SNR (CogVideoX-style)": diffusers.DDIMScheduler(**sd, rescale_betas_zero_snr=True),
        "flow matching, shift 3 (Wan/LTX/Hunyuan-style)": diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
    }


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 20)
    videos, source = _default_videos()
    print(f"freeinit_lab demo — band-wise SNR of the training noisy latent z_t\ndata: {source}, shape {tuple(videos.shape)}")
    print(f"convention: {SNR_CONVENTION}\n")
    schedulers = _schedulers()
    sd_name, sd = next(iter(schedulers.items()))
    table = band_snr(videos, sd, num_bands=6, timesteps=[0, 250, 500, 750, 900, 999])
    frame = table.to_pandas().round(2)
    frame.columns = [f"band {k} ({lo:.3f}-{hi:.3f})" for k, lo, hi in zip(table.band.values, table.band_lo.values, table.band_hi.values)]
    print(f"[{sd_name}] band SNR (dB) by training timestep:\n{frame}\n")
    print("At the last training step T, training z_T vs the inference initial latent (pure noise):")
    for name, sched in schedulers.items():
        gap = initialization_gap(videos, sched, num_bands=6)
        row = gap.sel(source="training z_T").values
        cells = "  ".join("-inf" if np.isneginf(v) else f"{v:6.1f}" for v in row)
        print(f"  {name:<55s} T={get_schedule(sched).terminal_timestep:g}: {cells}  (inference: all -inf)")
    print("\nA band above -inf at T means the model was trained with signal there that inference never provides: the initialization gap.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
