"""Run a sweep: in-process by default, on any ``dask.distributed`` cluster when given a client.

Every cell runs :func:`compute_cell` — the same function in-process and on a worker — which builds the pipeline
once per process (cached by its factory key), sets torch's intra-op threads (1 by default, so results do not
depend on where a cell runs), calls the study and returns the checked result. Workers only compute; the process
that runs :func:`run_sweep` writes every result into the store as it arrives, so there is one writer. A worker
that dies mid-cell has its cell rescheduled by dask; a sweep that dies is resumed by running it again.
"""

from __future__ import annotations

import os
import pickle
import time
from contextlib import contextmanager
from typing import Any

import xarray as xr

from freeinit_lab._checks import require_int

from .spec import Cell, PipelineFactory, SweepSpec
from .store import ON_CODE_CHANGE, SweepResultError, SweepStore, normalise_result
from .studies import Study, get_study

__all__ = ["run_sweep", "compute_cell", "pending_cells"]

_PIPELINES: dict[str, Any] = {}  # per process: factory key -> pipeline


def _pipeline(factory: PipelineFactory) -> Any:
    pipe = _PIPELINES.get(factory.key)
    if pipe is None:
        if len(_PIPELINES) >= 2:  # a worker serving several sweeps keeps the two most recent pipelines
            _PIPELINES.pop(next(iter(_PIPELINES)))
        pipe = _PIPELINES[factory.key] = factory()
    return pipe


@contextmanager
def _torch_threads(n: int | None):
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute_cell(study: Study, factory: PipelineFactory | Any, cell: Cell, num_videos: int, cell_dims: tuple[str, ...],
                 torch_threads: int | None = 1) -> tuple[xr.Dataset, float]:
    """Run ``study`` on one cell; returns the checked result and the study call's wall time in seconds.

    ``factory`` is a :class:`~freeinit_lab.sweep.PipelineFactory` (built once per process) or a pipeline. The
    pipeline is built and the study runs under ``torch_threads`` torch threads; the process's own setting is
    restored afterwards, so a worker of a user's cluster is left as it was.
    """
    with _torch_threads(torch_threads):
        pipe = _pipeline(factory) if isinstance(factory, PipelineFactory) else factory
        t0 = time.perf_counter()
        result = study.fn(pipe, seed=cell.seed, num_videos=num_videos, **cell.settings)
        seconds = time.perf_counter() - t0
    result = normalise_result(result, num_videos, cell_dims, study.name)
    extra = sorted(set(result.dims) - {"video", *study.dims})
    if study.dims and extra:
        raise SweepResultError(f"study {study.name!r} returned dims {extra} it did not declare (dims={study.dims})")
    return result, seconds


def name_failed_cell(err: BaseException, cell: Cell, spec: SweepSpec, store: SweepStore) -> None:
    """Mark ``err``, raised computing ``cell``, as the failure of that cell: ``err.sweep_cell`` is its label (the
    command line tells a cell's failure from bad input by it), and a note (shown with the traceback) names the cell
    and says how to resume."""
    err.sweep_cell = cell.label
    if hasattr(err, "add_note"):  # Python 3.11+
        err.add_note(f"raised in sweep cell ({cell.label}) of study {spec.study!r}; the cells finished before it "
                     f"stay complete in {store.path}: run the sweep again to compute the rest")


def pending_cells(spec: SweepSpec, store: SweepStore) -> list[Cell]:
    return [c for c in spec.cells() if not store.done[c.index]]


def _check_sendable(obj: Any, what: str) -> None:
    """Raise a TypeError naming why ``obj`` cannot reach a worker process, and the fix."""
    try:
        import cloudpickle
    except ImportError:  # distributed depends on cloudpickle; plain pickle is the stricter test
        cloudpickle = pickle
    try:
        cloudpickle.dumps(obj)
    except Exception as err:  # noqa: BLE001 - any pickling failure gets the same advice
        raise TypeError(
            f"the {what} cannot be sent to dask workers: {type(err).__name__}: {err}. Workers are separate "
            "processes; give a factory they can rebuild the pipeline from: pipeline='default', a folder, a hub id, "
            "'package.module:function', or a module-level function (no open files, locks or loaded models in "
            "its closure)."
        ) from None


def run_sweep(
    spec: SweepSpec | dict | str | os.PathLike,
    store: str | os.PathLike,
    *,
    client: Any = None,
    workers: int | None = None,
    pipeline: Any = None,
    torch_threads: int | None = 1,
    progress: bool = True,
    on_code_change: str = "refuse",
) -> xr.Dataset:
    """Run every missing cell of ``spec`` and return the store as a labelled dataset.

    Parameters
    ----------
    spec
        A :class:`SweepSpec`, its dict form, or the path of a YAML spec.
    store
        zarr store directory. A new path is created from the first finished cell; an existing store must come from
        the same spec (same hash) and only its incomplete cells are computed.
    client
        A ``dask.distributed.Client``: cells run on its workers (each loads the pipeline once). Default: in this
        process, with no dask needed.
    workers
        Start a ``LocalCluster`` of this many worker processes (1 thread each) for this call.
    pipeline
        Use this pipeline object (in-process only) or factory instead of ``spec.pipeline``.
    torch_threads
        Torch intra-op threads per cell (default 1 in every process, so serial and distributed runs agree bit for
        bit); ``None`` leaves the process setting alone.
    progress
        tqdm bar over the cells.
    on_code_change
        What to do when cells are to be computed into an existing store whose complete cells were computed under
        other code: another freeinit_lab source (its code digest; comments, docstrings and formatting do not
        count), or other torch, diffusers, numpy or Python (major.minor) versions; the store's attrs record them
        (``code_history``, see :mod:`freeinit_lab.sweep.store`). ``"refuse"`` (default) raises
        :class:`SweepStoreError` naming what differs; ``"recompute"`` computes every cell again under this code
        (also in a store with no missing cells), so the store is one code's; ``"continue"`` computes only the
        missing cells and appends this code to ``code_history``, so the mixture is on record. A store with no
        missing cells is read as it is under any code (except with ``"recompute"``); a store written before the
        code was recorded resumes with a warning.

    Returns
    -------
    xarray.Dataset
        dims: the grid keys, ``seed``, ``video`` and the study's own; ``complete`` marks finished cells; attrs hold
        the spec (``sweep_spec``) and its hash.

    Raises
    ------
    SweepSpecError
        Before any sampling: empty grid, unknown study or setting, bad seeds.
    SweepStoreError
        Before any sampling: ``store`` was written by another spec, is not a sweep store, another live run is
        writing it (``<store>.lock``), or (``on_code_change="refuse"``) its complete cells were computed under
        other code and cells are missing.
    TypeError
        Before any sampling: the pipeline (factory) cannot be sent to workers.
    Exception
        A cell's study raised: its own error, its ``sweep_cell`` attribute the cell's label and a note naming the cell
        (:func:`name_failed_cell`); the cells finished before stay complete in the store.

    Examples
    --------
    >>> import tempfile, os
    >>> from freeinit_lab.sweep import run_sweep
    >>> spec = {"pipeline": {"name": "analytic", "num_frames": 4, "height": 8}, "study": "freeinit",
    ...         "grid": {"d_s": [0.25, 0.5]}, "seeds": [0, 1], "videos_per_seed": 2,
    ...         "sampler": {"num_inference_steps": 3}}
    >>> ds = run_sweep(spec, os.path.join(tempfile.mkdtemp(), "out.zarr"), progress=False)
    >>> ds.gain.dims, int(ds.complete.sum())
    (('d_s', 'seed', 'video'), 4)
    """
    if on_code_change not in ON_CODE_CHANGE:
        raise ValueError(f"on_code_change={on_code_change!r} must be one of {ON_CODE_CHANGE}")
    if torch_threads is not None:
        require_int("torch_threads", torch_threads, why=" (torch threads per cell), or None")
    spec = SweepSpec.coerce(spec)
    if pipeline is not None:
        spec = SweepSpec(**{**spec.__dict__, "pipeline": pipeline})
    study = get_study(spec.study)
    study.check(spec)
    factory = spec.pipeline_factory()
    sweep_store = SweepStore(store, spec).open()
    if client is not None and workers is not None:
        raise ValueError("pass client= or workers=, not both")
    if isinstance(client, (str, os.PathLike)):
        raise TypeError(f"client={client!r} is an address; client= takes a dask.distributed.Client: pass "
                        f"client=Client({client!r}) (on the command line: --scheduler {client})")
    if client is not None or workers is not None:
        from . import cluster  # noqa: F401 - without distributed: the ImportError naming the extra, before any work
        _check_sendable(factory, "pipeline factory")
        _check_sendable(study, f"study {study.name!r}")
    recompute = on_code_change == "recompute" and sweep_store.written_by_other_code()
    if not pending_cells(spec, sweep_store) and not recompute:
        return sweep_store.dataset()  # reading never checks the code
    with sweep_store.writer_lock():
        sweep_store.open().prepare_code(on_code_change)  # again, now that no other run writes; refuses here
        todo = pending_cells(spec, sweep_store)
        run = (study, factory, spec, sweep_store, todo, torch_threads, progress)
        if todo and workers is not None:
            from .cluster import local_client, run_distributed

            with local_client(workers) as own:
                run_distributed(own, *run)
        elif todo and client is not None:
            from .cluster import run_distributed

            run_distributed(client, *run)
        elif todo:
            _run_serial(*run)
    return sweep_store.dataset()


def progress_bar(spec: SweepSpec, store: SweepStore, progress: bool, where: str):
    from tqdm.auto import tqdm

    total = int(store.done.size)
    return tqdm(total=total, initial=int(store.done.sum()), desc=f"sweep {spec.study} ({where})", unit="cell",
                disable=not progress, leave=False)


def _run_serial(study, factory, spec, store, todo, torch_threads, progress):
    """Cells one after the other; each cell's write overlaps the next cell's computation (one writer thread)."""
    from concurrent.futures import ThreadPoolExecutor

    with _torch_threads(torch_threads):  # as compute_cell builds it on a worker
        pipe = factory()
    bar = progress_bar(spec, store, progress, "in-process")
    writing = None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="sweep-writer") as writer:
            for cell in todo:
                bar.set_postfix_str(cell.label)
                try:
                    result, seconds = compute_cell(study, pipe, cell, spec.videos_per_seed, spec.dims, torch_threads)
                except Exception as err:
                    name_failed_cell(err, cell, spec, store)
                    raise
                if writing is not None:
                    writing.result()  # the previous cell is stored (or its error raised) before the next write
                    bar.update()
                writing = writer.submit(store.write, cell, result, seconds)
            writing.result()
            bar.update()
    finally:
        bar.close()


