"""freeinit_lab: see and fix the initialization gap of video diffusion models."""

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
