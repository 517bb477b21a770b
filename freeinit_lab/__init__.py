"""freeinit_lab: see and fix the initialization gap of video diffusion models.

The folders are the layers, each using only the ones above it in this list:

- :mod:`freeinit_lab.core` — tensor kernels and labelled wrappers (filters, mixes, bands, schedules, SNR, dims);
- :mod:`freeinit_lab.hooks` — reaching into a diffusers pipeline (layouts, reversible patches);
- :mod:`freeinit_lab.engine` — FreeInit around any diffusers video pipeline;
- :mod:`freeinit_lab.probes` — observing every step of every pass as xarray, record I/O;
- :mod:`freeinit_lab.analysis` — reading records and videos (trajectories, metrics);
- :mod:`freeinit_lab.embedded` — the embedded default data, model and pipeline;
- :mod:`freeinit_lab.studies` — the measurements behind the notebooks;
- :mod:`freeinit_lab.viz` — figures, widgets, reports.

Everything is imported on first use, so ``import freeinit_lab`` is cheap; the public names below and every
subpackage are attributes of the package (``fl.freeinit``, ``fl.viz.plots``, ``fl.plots``, ``fl.testing``).
"""

import sys as _sys
import types as _types

from freeinit_lab import _compat
from freeinit_lab._lazy import attach as _attach

__version__ = "0.1.0"

_SUBPACKAGES = ["analysis", "core", "embedded", "engine", "hooks", "probes", "studies", "sweep", "testing", "viz"]

#: ``{public name: module it lives in}``, relative to this package.
_NAMES = {
    # core
    "RECORD_DIMS": "core.dims",
    "VIDEO_DIMS": "core.dims",
    "NoiseSchedule": "core.schedules",
    "get_schedule": "core.schedules",
    "band_snr": "core.snr",
    "inference_band_snr": "core.snr",
    "initialization_gap": "core.snr",
    "reinit_band_composition": "core.snr",
    "reinit_power_split": "core.snr",
    "apply_lowpass": "core.spectral",
    "band_masks": "core.spectral",
    "band_power": "core.spectral",
    "default_band_edges": "core.spectral",
    "frequency_radius": "core.spectral",
    "lowpass_filter": "core.spectral",
    "reinit_noise": "core.spectral",
    "spatial_spectrum": "core.spectral",
    "temporal_spectrum": "core.spectral",
    # hooks
    "LatentLayout": "hooks.layouts",
    "get_layout": "hooks.layouts",
    "register_layout": "hooks.layouts",
    # engine
    "FreeInitIteration": "engine.result",
    "FreeInitNoGapWarning": "engine.checks",
    "FreeInitResult": "engine.result",
    "FreeInitSettings": "core.reinit",
    "fast_sampling_steps": "core.reinit",
    "reinitialize": "core.reinit",
    "freeinit": "engine.loop",
    # probes
    "CAPTURE_SITES": "probes.record",
    "LatentProbe": "probes.probe",
    "ProbeBudgetError": "probes.budget",
    "estimate_capture_bytes": "probes.budget",
    "mark_iteration": "probes.probe",
    "load_record": "probes.io",
    "save_record": "probes.io",
    "mark_complete": "probes.io",
    "DamagedRecordError": "probes.io",
    "EmptyRecordError": "probes.io",
    "IncompleteRecordWarning": "probes.io",
    "check_pipeline": "probes.pipeline_check",
    "PipelineCheck": "probes.pipeline_check",
    "PipelineCheckError": "probes.pipeline_check",
    # analysis
    "band_error_trajectory": "analysis.records",
    "band_power_trajectory": "analysis.records",
    "band_snr_trajectory": "analysis.records",
    "convergence_to_final": "analysis.records",
    "follow_fraction": "analysis.records",
    "lock_in_step": "analysis.records",
    "FidelityReport": "analysis.fidelity",
    "fidelity_report": "analysis.fidelity",
    "fidelity_gate": "analysis.fidelity",
    "band_power_gap": "analysis.fidelity",
    "training_marginal_latents": "analysis.fidelity",
    "judge_against_data": "analysis.fidelity",
    "denoising_error": "analysis.fidelity",
    # embedded
    "dead_leaves_videos": "embedded.data",
    "load_clips": "embedded.data",
    "GaussianVideoDenoiser": "embedded.models",
    "TinyVideoUNet": "embedded.models",
    "widen_video_unet": "embedded.models",
    "add_temporal_attention": "embedded.models",
    "TinyVideoPipeline": "embedded.pipelines",
    "default_scheduler": "embedded.pipelines",
    "sampler_scheduler": "embedded.pipelines",
    "store_sampler": "embedded.pipelines",
    "fit_gaussian_prior": "embedded.pipelines",
    "load_analytic_pipeline": "embedded.pipelines",
    "load_default_pipeline": "embedded.pipelines",
    "load_default_analytic_pipeline": "embedded.pipelines",
    "default_training_videos": "embedded.pipelines",
    "held_out_videos": "embedded.pipelines",
    "ChannelNormalizer": "embedded.pipelines",
    "subject_videos": "embedded.world",
    "SubjectsConfig": "embedded.world",
    "WORLD_VERSION": "embedded.world",
    # studies
    "lowest_bins_mask": "studies.noise_swap",
    "noise_swap_experiment": "studies.noise_swap",
    "noise_swap_sweep": "studies.noise_swap",
    "load_cutoff_map": "studies.cutoff_map",
    "measure_cutoff_map": "studies.cutoff_map",
    "save_cutoff_map": "studies.cutoff_map",
    "refine_once": "studies.refinement",
    "refinement_study": "studies.refinement",
    "InitStrategy": "studies.strategies",
    "TerminalMarginal": "studies.strategies",
    "default_strategies": "studies.strategies",
    "evaluate_strategies": "studies.strategies",
    "summarize_strategies": "studies.strategies",
    "analytic_controls": "studies.strategies",
    "decompose_freeinit": "studies.decomposition",
    "decomposition_figure": "viz.figures",
    "data_comparison_figure": "viz.figures",
    "decomposition_table": "studies.decomposition",
    "bootstrap_interval": "studies.decomposition",
    "two_sample_interval": "studies.decomposition",
    "gap_kl": "core.snr",
    "gap_kl_share": "core.snr",
    "gap_kl_difference": "core.snr",
    "GapShare": "core.snr",
    "GapDifference": "core.snr",
}

# Old module paths (``fl.spectral``, ``fl.plots``, ...) as attributes: aliases of the modules' new homes.
_NAMES.update({old: new + ":" for old, new in _compat.MOVED_MODULES.items() if old not in _NAMES})

__getattr__, __dir__, __all__ = _attach(__name__, submodules=_SUBPACKAGES, names=_NAMES)
_compat.install(__name__)


class _Package(_types.ModuleType):
    """The package module; keeps public functions from being replaced by same-named old module paths.

    ``import freeinit_lab.freeinit`` (the old path of :mod:`freeinit_lab.engine.loop`) makes Python bind the module
    as the package attribute ``freeinit``; the function of that name stays the attribute instead.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, _types.ModuleType) and _NAMES.get(name, ":")[-1] != ":":
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
