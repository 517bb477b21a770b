"""Reading records and videos: band trajectories, lock-in, convergence; consistency metrics; fidelity to data."""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(
    __name__,
    submodules=["fidelity", "metrics", "records"],
    names={
        "band_error_trajectory": "records",
        "band_power_trajectory": "records",
        "band_snr_trajectory": "records",
        "convergence_to_final": "records",
        "follow_fraction": "records",
        "lock_in_step": "records",
        # moved to freeinit_lab.studies.noise_swap (they run pipelines); reachable here for one release
        "lowest_bins_mask": "freeinit_lab.studies.noise_swap",
        "noise_swap_experiment": "freeinit_lab.studies.noise_swap",
        "noise_swap_sweep": "freeinit_lab.studies.noise_swap",
        "FidelityReport": "fidelity",
        "fidelity_gate": "fidelity",
        "fidelity_report": "fidelity",
    },
)
