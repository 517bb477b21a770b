"""Observing a pipeline: :class:`LatentProbe` records every step of every pass as xarray; record I/O."""

from freeinit_lab._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    submodules=["io", "probe"],
    names={
        "CAPTURE_SITES": "probe",
        "LatentProbe": "probe",
        "ProbeBudgetError": "probe",
        "RECORD_VERSION": "probe",
        "estimate_capture_bytes": "probe",
        "mark_iteration": "probe",
        "load_record": "io",
        "save_record": "io",
        "mark_complete": "io",
        "DamagedRecordError": "io",
        "IncompleteRecordWarning": "io",
    },
)
