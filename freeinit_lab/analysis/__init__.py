"""Reading records and videos: band trajectories, lock-in, convergence; consistency metrics; fidelity to data."""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    submodules=["fidelity", "metrics", "records"],
    names={
        "band_error_trajectory": "records",
        "band_power_trajectory": "records",
        "band_snr_trajectory": "records",
        "convergence_to_final": "records",
        "follow_fraction": "records",
        "lock_in_step": "records",
        "lowest_bins_mask": "records",
        "noise_swap_experiment": "records",
        "noise_swap_sweep": "records",
        "FidelityReport": "fidelity",
        "fidelity_gate": "fidelity",
        "fidelity_report": "fidelity",
    },
)
