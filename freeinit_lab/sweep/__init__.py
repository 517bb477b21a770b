"""Sweeps: a grid of settings × seeds × a study's per-cell measurement, into one labelled zarr store.

>>> from freeinit_lab.sweep import run_sweep  # doctest: +SKIP
>>> ds = run_sweep({"pipeline": "analytic", "study": "freeinit", "grid": {"d_s": [0.25, 0.5]},
...                 "seeds": [0, 1], "videos_per_seed": 2, "sampler": {"num_inference_steps": 4}},
...                "out.zarr")  # doctest: +SKIP
>>> ds.consistency.dims  # doctest: +SKIP
('d_s', 'seed', 'arm', 'video')

In-process by default (no dask needed); ``client=`` (a ``dask.distributed.Client``) or ``workers=N`` runs the
cells on worker processes. The same from a shell::

    python -m freeinit_lab.sweep SPEC.yaml --store OUT.zarr [--workers N | --scheduler ADDRESS]

A cell's numbers depend only on its settings, its seed and the code that computes it; rerunning a spec on its store
computes only the missing cells, and refuses when the store's cells were computed under other code unless
``on_code_change`` says how (the store records its code in ``code_history``). See :mod:`freeinit_lab.sweep.spec`, :mod:`~freeinit_lab.sweep.studies`, :mod:`~freeinit_lab.sweep.store`
and :mod:`~freeinit_lab.sweep.engine`.
"""

import sys as _sys
import types as _types

from .engine import compute_cell, run_sweep
from .spec import Cell, PipelineFactory, SweepSpec, SweepSpecError, video_seeds
from .store import SweepResultError, SweepStore, SweepStoreError, WorkerCodeError
from .studies import STUDIES, Study, get_study, list_studies, register_study

sweep = run_sweep


class _CallableModule(_types.ModuleType):
    """``freeinit_lab.sweep(spec, store, ...)`` calls :func:`run_sweep`; the module stays importable as usual."""

    def __call__(self, *args, **kwargs):
        return run_sweep(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "run_sweep",
    "sweep",
    "compute_cell",
    "SweepSpec",
    "SweepSpecError",
    "SweepStore",
    "SweepStoreError",
    "SweepResultError",
    "WorkerCodeError",
    "PipelineFactory",
    "Cell",
    "video_seeds",
    "Study",
    "STUDIES",
    "register_study",
    "get_study",
    "list_studies",
]
