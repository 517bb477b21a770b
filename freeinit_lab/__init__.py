"""freeinit_lab: see and fix the initialization gap of video diffusion models.

Layers: tensor kernels (:mod:`freeinit_lab.spectral`, :mod:`freeinit_lab.schedules`) → labelled xarray
results (:mod:`freeinit_lab.snr`, probes, FreeInit records) → figures, widgets and notebooks.
"""

from .dims import RECORD_DIMS, VIDEO_DIMS
from .schedules import NoiseSchedule, get_schedule
from .snr import band_snr, inference_band_snr, initialization_gap, reinit_band_composition
from .spectral import (
    apply_lowpass,
    band_masks,
    band_power,
    default_band_edges,
    frequency_radius,
    lowpass_filter,
    reinit_noise,
    spatial_spectrum,
    temporal_spectrum,
)

__version__ = "0.1.0"

# --- probes (issue 4) ---
from freeinit_lab.probes import CAPTURE_SITES, LatentProbe, ProbeBudgetError, estimate_capture_bytes, mark_iteration
from freeinit_lab.io import load_record, save_record
from freeinit_lab.analysis import (
    band_error_trajectory,
    band_power_trajectory,
    band_snr_trajectory,
    convergence_to_final,
    follow_fraction,
    lock_in_step,
    noise_swap_experiment,
)

# --- FreeInit engine (issue 3) ---
from freeinit_lab.freeinit import (  # noqa: E402
    FreeInitIteration,
    FreeInitNoGapWarning,
    FreeInitResult,
    fast_sampling_steps,
    freeinit,
)
from freeinit_lab.layouts import LatentLayout, get_layout, register_layout  # noqa: E402
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
# --- notebooks' engines (issue 6) and initialisation strategies (issue 8) ---
from . import cutoff_map, refinement, strategies  # noqa: E402
from .analysis import lowest_bins_mask, noise_swap_sweep  # noqa: E402
from .cutoff_map import load_cutoff_map, measure_cutoff_map, save_cutoff_map  # noqa: E402
from .refinement import refine_once, refinement_study  # noqa: E402
from .strategies import (  # noqa: E402
    InitStrategy,
    TerminalMarginal,
    default_strategies,
    evaluate_strategies,
    summarize_strategies,
)
# --- FreeInit's mechanism vs its side effects: controls and the paired decomposition ---
from . import controls, decomposition  # noqa: E402
from .decomposition import decompose_freeinit, decomposition_figure, decomposition_table  # noqa: E402
