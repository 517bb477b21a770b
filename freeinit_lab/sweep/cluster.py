"""The dask.distributed side of a sweep (imported only when a sweep runs on a cluster).

:func:`run_distributed` submits the missing cells, writes each result as it arrives (the caller's process is the
store's only writer) and cancels what is left on error. It leaves the client's cluster as it found it: it
registers no worker plugin, and every cell sets torch's threads for itself and restores them
(:func:`freeinit_lab.sweep.engine.compute_cell`), so a user's long-lived cluster runs their other work as before.
:class:`SweepWorkerPlugin` loads a pipeline on every worker up front (a warm cluster for timing).
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Any

from freeinit_lab._checks import require_int
from freeinit_lab._extras import require

require("distributed", "a sweep on dask workers (workers=, client=, --workers, --scheduler)")
from distributed import Client, LocalCluster, WorkerPlugin, as_completed  # noqa: E402

from .engine import _pipeline, _torch_threads, compute_cell, name_failed_cell, progress_bar  # noqa: E402
from .spec import PipelineFactory  # noqa: E402
from .store import CODE_RECORD_KEYS, WorkerCodeError, code_record  # noqa: E402

__all__ = ["SweepWorkerPlugin", "run_distributed", "compute_cell_checked", "local_cluster", "local_client", "connect",
           "WORKER_CONFIG"]


class SweepWorkerPlugin(WorkerPlugin):
    """Loads a sweep's pipeline on every worker up front (cached per worker process, as cells would load it).

    Not registered by :func:`run_sweep`, which needs no worker set-up; register it yourself to have a cluster warm
    before timing cells (``client.register_plugin(SweepWorkerPlugin(1, factory))``, and
    ``client.unregister_worker_plugin(SweepWorkerPlugin.name)`` when done). The pipeline is built with
    ``torch_threads`` torch threads, as :func:`~freeinit_lab.sweep.engine.compute_cell` builds it, and the
    worker's own setting is restored afterwards: the plugin changes no worker setting, so there is nothing for a
    ``teardown`` to restore (the pipeline stays in the worker's cache of the two most recent pipelines).
    """

    name = "freeinit-lab-sweep"
    idempotent = False

    def __init__(self, torch_threads: int | None = 1, factory: PipelineFactory | None = None):
        self.torch_threads = torch_threads
        self.factory = factory

    def setup(self, worker=None):
        if self.factory is not None:
            with _torch_threads(self.torch_threads):
                _pipeline(self.factory)


def connect(address: str, timeout: float = 10.0):
    """A ``dask.distributed.Client`` for the scheduler at ``address``; a clear error when none answers."""
    try:
        return Client(address, timeout=f"{float(timeout)}s")
    except (OSError, TimeoutError) as err:
        raise ConnectionError(
            f"no dask scheduler answered at {address!r} within {timeout:g} s ({type(err).__name__}: {err}). Start one "
            "(`dask scheduler`, then `dask worker ADDRESS` on each machine, or dask-jobqueue), check the address "
            "and port, or run locally with --workers N."
        ) from None


#: worker settings for torch cells: no statistical profiler (it takes the GIL every 10 ms) and no
#: ``MALLOC_TRIM_THRESHOLD_`` (returning every freed tensor buffer to the OS makes the next allocation fault its
#: pages in again); one BLAS/OpenMP thread per worker, as dask's own default.
WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
}


def _nanny_environ_keys() -> set[str]:
    """The variables a nanny writes into its *own* process's ``os.environ`` before spawning a worker: the
    ``distributed.nanny.pre-spawn-environ`` settings (ours and dask's defaults) and ``PYTHONHASHSEED``."""
    import dask

    return set(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}) | {"PYTHONHASHSEED"}


def _restore_environ(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _nanny_class(saved: dict[str, str | None], base: type | None = None) -> type:
    """A ``Nanny`` (or the caller's ``Nanny`` subclass ``base``) that gives the calling process its environment
    (``saved``) back after spawning its worker.

    ``distributed``'s nanny sets the pre-spawn variables (``OMP_NUM_THREADS=1`` …) with ``os.environ.update`` in
    the process that runs it, i.e. the caller's, so that the spawned worker inherits them, and leaves them there
    (dask/distributed#6749). Every process the caller starts afterwards would inherit them too: Jupyter kernels
    that nbval launched after a sweep ran their torch on one thread, twice as slow. Every spawn (start-up and the
    restart of a killed worker) goes through ``instantiate``; the variables are restored when the last spawn of
    the cluster in flight has finished, so no sibling nanny's worker is spawned without them (the nannies of one
    cluster share its event loop, so the count needs no lock).
    """
    from distributed import Nanny

    in_flight = [0]

    class _EnvironRestoringNanny(base or Nanny):
        async def instantiate(self):
            in_flight[0] += 1
            try:
                return await super().instantiate()
            finally:
                in_flight[0] -= 1
                if not in_flight[0]:
                    _restore_environ(saved)

    return _EnvironRestoringNanny


def local_cluster(n_workers: int, *, threads_per_worker: int = 1, **kwargs: Any):
    """A ``distributed.LocalCluster`` of ``n_workers`` worker processes (spawned), ``threads_per_worker`` each.

    Workers get :data:`WORKER_CONFIG` (also when the nanny restarts one). The caller's own environment is left
    as it was: the variables a nanny sets for its worker are restored after each spawn (:func:`_nanny_class`),
    also when ``worker_class`` is the caller's own ``Nanny`` subclass (it is subclassed once more to do so).
    """
    import dask

    require_int("workers", n_workers, why=" (worker processes)")
    kwargs.setdefault("dashboard_address", ":0")  # any free port: never collides with another cluster
    kwargs.setdefault("silence_logs", 40)  # logging.ERROR: a killed worker's restart is reported by the sweep
    with dask.config.set(WORKER_CONFIG):
        saved = {key: os.environ.get(key) for key in _nanny_environ_keys()}
        from distributed import Nanny

        given = kwargs.get("worker_class")
        if given is None or isinstance(given, type) and issubclass(given, Nanny):  # a caller's nanny restores too
            kwargs["worker_class"] = _nanny_class(saved, given)
        try:
            return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, **kwargs)
        finally:
            _restore_environ(saved)


@contextmanager
def local_client(n_workers: int, **kwargs: Any):
    """A client of a fresh :func:`local_cluster`, closed (with the cluster) on exit."""
    with local_cluster(n_workers, **kwargs) as cluster, Client(cluster) as client:
        yield client


def compute_cell_checked(expected: dict, *args: Any) -> Any:
    """:func:`~freeinit_lab.sweep.engine.compute_cell` on a worker whose code record
    (:func:`~freeinit_lab.sweep.store.code_record`: the digest of freeinit_lab's code, the versions of Python,
    torch, diffusers and numpy) is ``expected``, the one the store records; a :class:`WorkerCodeError` naming the
    worker and each difference, before the cell runs, on a worker with other code (a cluster whose workers were
    installed apart from the client: the store would hold cells of two codes under one record)."""
    now = code_record()
    differ = [f"{k}: {expected.get(k)} on the client, {now.get(k)} on the worker" for k in CODE_RECORD_KEYS
              if expected.get(k) != now.get(k)]
    if differ:
        try:
            from distributed import get_worker

            where = get_worker().address
        except (ImportError, ValueError):
            where = "(not a dask worker)"
        raise WorkerCodeError(f"worker {where} runs other code than the client that writes the store: "
                              f"{'; '.join(differ)}. Install the same freeinit_lab and libraries on every worker "
                              "(e.g. the same wheel or environment), then run the sweep again: nothing was computed "
                              "on that worker")
    return compute_cell(*args)


def run_distributed(client: Client, study, factory: PipelineFactory, spec, store, todo, torch_threads: int | None,
                    progress: bool) -> None:
    """Run the ``todo`` cells on ``client``'s workers; write each result into ``store`` as it arrives.

    Each cell is one task (a unique key per run, ``pure=False``); a worker that dies mid-cell has its task rerun
    elsewhere by the scheduler (up to ``distributed.scheduler.allowed-failures`` times). On any error the cells
    not yet written are cancelled; the written ones stay complete in the store. Nothing is registered on the
    cluster: each cell runs under ``torch_threads`` threads and restores the worker's setting after it. Each cell
    first checks that its worker runs this process's code (:func:`compute_cell_checked`), which the store records.
    """
    run = uuid.uuid4().hex[:8]
    futures = {}
    expected = code_record()
    for cell in todo:
        key = f"freeinit-sweep-{store.hash[:8]}-{run}-" + "-".join(map(str, cell.index))
        fut = client.submit(compute_cell_checked, expected, study, factory, cell, spec.videos_per_seed, spec.dims,
                            torch_threads, key=key, pure=False)
        futures[fut] = cell
    bar = progress_bar(spec, store, progress, f"{len(client.scheduler_info().get('workers', {}))} workers")
    try:
        for fut in as_completed(list(futures)):
            cell = futures.pop(fut)
            try:
                result, seconds = fut.result()
            except Exception as err:
                name_failed_cell(err, cell, spec, store)
                raise
            store.write(cell, result, seconds)
            fut.release()
            bar.update()
    finally:
        bar.close()
        if futures:
            client.cancel(list(futures))
