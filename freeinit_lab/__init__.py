"""freeinit_lab: see and fix the initialization gap of video diffusion models."""

__version__ = "0.1.0"

# --- embedded default (issue 5) ---
from .data import dead_leaves_videos, load_clips  # noqa: E402
from .models import GaussianVideoDenoiser, TinyVideoUNet  # noqa: E402
from .pipelines import (  # noqa: E402
    TinyVideoPipeline,
    default_scheduler,
    fit_gaussian_prior,
    load_analytic_pipeline,
    load_default_pipeline,
)
# --- end embedded default (issue 5) ---
