"""Observing a pipeline: :class:`LatentProbe` records every step of every pass as xarray; record I/O."""

from freeinit_lab._lazy import attach as _attach

__getattr__, __dir__, __all__ = _attach(
    __name__,
    submodules=["budget", "io", "passes", "pipeline_check", "probe", "record", "sinks"],
    names={
        "CAPTURE_SITES": "record",
        "LatentProbe": "probe",
        "ProbeBudgetError": "budget",
        "RECORD_VERSION": "record",
        "estimate_capture_bytes": "budget",
        "mark_iteration": "probe",
        "load_record": "io",
        "save_record": "io",
        "mark_complete": "io",
        "DamagedRecordError": "io",
        "EmptyRecordError": "io",
        "IncompleteRecordWarning": "io",
        "check_pipeline": "pipeline_check",
        "PipelineCheck": "pipeline_check",
        "PipelineCheckError": "pipeline_check",
    },
)
