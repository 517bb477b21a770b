"""The sweep's zarr store: one labelled dataset, one chunk per cell, a completion mark per cell.

Layout: every data variable has the cell dims first (the grid keys, then ``seed``) and the study's own dims after
(``video``, ``arm``, ...). Chunks are one cell wide along the cell dims and whole along the others, so a cell's
write touches exactly its own chunks. ``complete`` (cell dims, bool) is written after the cell's data, and
``cell_seconds`` with it; a cell is either complete or recomputed. Every chunk carries a CRC-32 checksum and is
written even when it equals the fill value, so reopening the store finds a complete cell whose chunk was lost or
damaged since (deleted, truncated, bit-flipped): it is recomputed, with a warning naming it, never read as NaN.
The labels are checked too (their chunks carry checksums, and the cell dims' must be the spec's values): a store
whose labels were damaged is refused, naming them, never read with its numbers under other settings.
The spec and its hash live in the store's attrs (``sweep_spec``, ``sweep_spec_hash``); a store made from another
spec is refused.

The store is created from the first finished cell (its variables, dims and labels are the template for all
others), written beside its path and moved there whole, so a run stopped while creating it leaves no store; later
cells are checked against it and written with plain zarr region assignment (one writer: the process that runs the
sweep).

**The code a store's cells were computed with.** The spec hash names what a sweep asks for, not the library that
answers: a bug fix in a study changes its numbers without changing the spec (or ``freeinit_lab_version``). So
``code_history`` (attrs, a JSON list) records what the cells were computed under, one :func:`code_record` per
code: a digest of the freeinit_lab package's Python source (:func:`code_digest`: parsed, docstrings dropped, so
comments, docstrings and formatting do not count) and the versions of Python (major.minor), torch, diffusers and
numpy. :func:`~freeinit_lab.sweep.run_sweep` computing cells into a store whose complete cells were computed
under another record refuses before computing anything, naming what differs, unless ``on_code_change`` says
otherwise:

- ``"refuse"`` (default): :class:`SweepStoreError`; use a new store path, or one of the two below;
- ``"recompute"``: every complete cell is computed again under the current code (their marks are cleared when the
  first new cell is written, so an interrupted run leaves a consistent store), and ``code_history`` is that one
  record;
- ``"continue"``: only the missing cells are computed; the new record is appended to ``code_history`` (before the
  first new cell is written), so the mixture is on record.

A code record already in ``code_history`` is accepted. Reading never checks: a store with no pending cells opens
as before under any code. A store written before this record existed (no ``code_history``) resumes with a
warning, recorded as ``{"code_digest": null, ...}`` beside the code that completes it.
"""

from __future__ import annotations

import ast
import functools
import gc
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
import warnings
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np
import xarray as xr

from freeinit_lab._extras import require

from .spec import Cell, SweepSpec

__all__ = ["SweepStore", "SweepStoreError", "SweepResultError", "WorkerCodeError", "normalise_result", "code_digest",
           "code_record", "ON_CODE_CHANGE"]


def _lock_owner(lock: str) -> dict | None:
    """The owner written in ``lock``: ``None`` if there is no lock, ``{}`` if it cannot be read."""
    try:
        with open(lock) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


@contextmanager
def _directory_guard(directory: str):
    """An exclusive ``flock`` on ``directory`` for the block (POSIX; elsewhere no guard): serialises the takeover of
    a dead run's lock between runs on this host without leaving a file behind."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened for reading: no guard
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # a file system without flock (some network mounts): no guard
                pass
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the flock


class SweepStoreError(ValueError):
    """The store path holds something this sweep must not write into (another spec, not a sweep store)."""


class SweepResultError(ValueError):
    """A study returned a cell result the store cannot hold (wrong dims, labels that differ between cells)."""


class WorkerCodeError(RuntimeError):
    """A dask worker would compute a cell with other code than the store records (another freeinit_lab, torch,
    diffusers, numpy or Python): raised on the worker before the cell runs."""


def normalise_result(ds: Any, num_videos: int, cell_dims: tuple[str, ...], study: str) -> xr.Dataset:
    """Check a study's cell result and make it storable: coords along ``video`` become variables, scalar coords
    named like a cell dim (the cell's own labels) are dropped, no attrs."""
    if not isinstance(ds, xr.Dataset):
        raise SweepResultError(f"study {study!r} returned {type(ds).__name__}; a cell result is an xarray.Dataset")
    if ds.sizes.get("video") != num_videos:
        raise SweepResultError(f"study {study!r} returned dims {dict(ds.sizes)}; a cell result needs a `video` dim of "
                               f"size videos_per_seed = {num_videos}")
    own = [n for n, c in ds.coords.items() if n in cell_dims and c.ndim == 0]
    ds = ds.drop_vars(own)  # the cell's own labels (what .sel(d_s=...) leaves): the store labels every cell itself
    clash = sorted((set(ds.dims) | set(ds.variables)) & set(cell_dims))
    if clash:
        raise SweepResultError(f"study {study!r} returned dims or variables {clash} that are cell dims of the sweep; "
                               "rename them")
    varying = [n for n, c in ds.coords.items() if n not in ds.indexes and "video" in c.dims]
    ds = ds.reset_coords(varying)
    clash = sorted(set(ds.variables) & {"complete", "cell_seconds"})
    if clash:
        raise SweepResultError(f"study {study!r} returned variables {clash}, names the store uses itself")
    for name, v in ds.data_vars.items():
        if v.dtype.kind not in "fiub":
            raise SweepResultError(f"study {study!r}: variable {name!r} has dtype {v.dtype}; store numbers or booleans")
    ds = ds.copy(deep=False)
    ds.attrs = {}
    return ds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


#: attr of stores whose every cell chunk is written with a CRC-32 checksum (older stores skip the check on open)
CHECKSUM_ATTR = "cell_chunks"
CHECKSUM_VALUE = "written whole, crc32 checksummed"


def _same_labels(stored: np.ndarray, spec: np.ndarray) -> bool:
    """Whether a store's coordinate holds the spec's values (NaN equal to NaN)."""
    if stored.shape != spec.shape:
        return False
    numeric = stored.dtype.kind in "fc" and spec.dtype.kind in "fciu"
    return bool(np.array_equal(stored, spec, equal_nan=numeric))


def _fill(dtype: np.dtype):
    return np.nan if dtype.kind == "f" else (False if dtype.kind == "b" else 0)


# ------------------------------------------------------------------------------------------ the code cells run on
#: attr: JSON list of the :func:`code_record` s the store's cells were computed under
CODE_ATTR = "code_history"
#: ``run_sweep(on_code_change=...)``: what to do when a store's complete cells came from other code
ON_CODE_CHANGE = ("refuse", "recompute", "continue")
#: the libraries whose versions are part of a code record (with Python's major.minor)
CODE_LIBRARIES = ("torch", "diffusers", "numpy")
#: the fields of a code record (:func:`code_record`), in the order differences are reported
CODE_RECORD_KEYS = ("code_digest", "freeinit_lab", "python", *CODE_LIBRARIES)


def _without_strings(body: list[ast.stmt]) -> list[ast.stmt]:
    """``body`` without its bare string statements (docstrings, also an attribute's), recursively."""
    kept = []
    for node in body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                setattr(node, field, _without_strings(inner))
        kept.append(node)
    return kept


@functools.cache
def code_digest(root: str | None = None) -> str:
    """SHA-256 (first 16 hex digits) of the Python code of the freeinit_lab package (or of the folder ``root``).

    Every ``.py`` file under the package, in path order, enters as its path and its ``ast`` with the bare string
    statements (docstrings) removed and no line numbers: comments, docstrings and formatting do not change it, any
    change to what the code does does. Computed once per process: about 0.25 s of CPU for the package's ~60 files
    (0.8 MB), with the cyclic garbage collector paused (it more than doubles the time of building the trees, which
    hold no cycles).
    """
    if root is None:
        import freeinit_lab

        root = os.path.dirname(os.path.abspath(freeinit_lab.__file__))
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _digest_tree(root)
    finally:
        if collecting:
            gc.enable()


def _digest_tree(root: str) -> str:
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                source = fh.read()
            try:
                tree = ast.parse(source)
            except SyntaxError:  # a file no import can run: its bytes
                text = source
            else:
                tree.body = _without_strings(tree.body)
                text = ast.dump(tree, annotate_fields=False).encode()
            h.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0" + text + b"\0")
    return h.hexdigest()[:16]


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def code_record() -> dict[str, str | None]:
    """What this process computes cells with: :func:`code_digest`, freeinit_lab's version, Python's major.minor and
    the versions of torch, diffusers and numpy (``None``: not installed). Computed once per process."""
    return dict(_code_record())


@functools.cache
def _code_record() -> dict[str, str | None]:
    import freeinit_lab

    return {"code_digest": code_digest(), "freeinit_lab": getattr(freeinit_lab, "__version__", None),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            **{lib: _version(lib) for lib in CODE_LIBRARIES}}


def _code_changes(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per difference between a stored code record and the current one."""
    lines = []
    if stored.get("code_digest") is None:
        lines.append("  code: not recorded (the store was written before freeinit_lab recorded its code)")
    elif stored.get("code_digest") != now["code_digest"] or stored.get("freeinit_lab") != now["freeinit_lab"]:
        lines.append(f"  code: the library's code changed since the store was written (freeinit_lab "
                     f"{stored.get('freeinit_lab')}, code digest {stored.get('code_digest')} in the store; "
                     f"{now['freeinit_lab']}, {now['code_digest']} now)")
    for key in ("python", *CODE_LIBRARIES):
        if stored.get(key) != now[key]:
            lines.append(f"  {key}: {stored.get(key)} in the store, {now[key]} now")
    return lines


def _remove_stray(path: str, settle: float = 0.25) -> None:
    """Remove a half-written store folder left by a failed creation. zarr writes a store's files concurrently, so
    writes already in flight when one fails may land after the error has reached us and re-create the folder: it
    is removed again until it has stayed gone for ``settle`` seconds."""
    gone_since = None
    while True:
        if os.path.exists(path):
            shutil.rmtree(path, ignore_errors=True)
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since >= settle:
            return
        time.sleep(0.02)


class SweepStore:
    """Reads and writes the zarr store of one sweep spec.

    Parameters
    ----------
    path
        Directory of the zarr store.
    spec
        The sweep; its hash must match an existing store's.
    """

    def __init__(self, path: str | os.PathLike, spec: SweepSpec):
        self.path = os.fspath(path)
        self.spec = spec
        self.hash = spec.spec_hash()
        self.done = np.zeros(spec.shape, dtype=bool)
        self._group = None
        self._layout: dict[str, tuple[str, ...]] | None = None
        self._labels: dict[str, np.ndarray] = {}
        self.code_history: list[dict[str, Any]] | None = None  # None: a new store, or one from before the record
        self._code_update: list[dict[str, Any]] | None = None  # written before the next cell (prepare_code)
        self._clear_marks = False  # "recompute": clear the old cells' marks before the next cell is written

    # ---------------------------------------------------------------------------------------------- opening
    @property
    def exists(self) -> bool:
        return os.path.isdir(self.path) and bool(os.listdir(self.path))

    def open(self) -> SweepStore:
        """Check an existing store against the spec and read which cells are complete (no-op for a new path)."""
        require("zarr", "a sweep's store")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise SweepStoreError(f"{self.path} is a file, not a zarr store directory; choose another store path")
        if not self.exists:
            return self
        try:
            ds = xr.open_zarr(self.path, chunks=None)
        except Exception as err:  # noqa: BLE001 - anything unreadable is "not a sweep store"
            damaged = self._damaged_labels()
            if damaged:
                raise self._labels_error(damaged) from None
            raise SweepStoreError(f"{self.path} exists but is not a readable zarr store ({type(err).__name__}: "
                                  f"{err}); choose a new store path or delete it") from None
        stored = ds.attrs.get("sweep_spec_hash")
        if stored is None or "complete" not in ds:
            raise SweepStoreError(f"{self.path} is a zarr store but not a sweep store (no sweep_spec_hash); choose "
                                  "a new store path")
        if stored != self.hash:
            raise SweepStoreError(self._mismatch(json.loads(ds.attrs.get("sweep_spec", "{}")), stored))
        wrong = [f"{dim}: {ds[dim].values.tolist() if dim in ds.coords else 'missing'} in the store, "
                 f"{list(values)} in its spec" for dim, values in zip(self.spec.dims, [*self.spec.grid.values(),
                                                                                       self.spec.seeds])
                 if dim not in ds.coords or not _same_labels(ds[dim].values, np.asarray(list(values)))]
        if wrong:  # the spec (its hash is the store's) says what they are: a lost or flipped chunk of a coordinate
            raise self._labels_error(wrong)
        checked = ds.attrs.get(CHECKSUM_ATTR) == CHECKSUM_VALUE
        damaged: list[tuple[tuple[int, ...], str]] = []
        try:
            complete = ds["complete"].transpose(*self.spec.dims).values
        except Exception:  # noqa: BLE001 - a damaged mark: read them cell by cell, an unreadable one is "not done"
            if not checked:
                raise
            complete, damaged = self._marks_cellwise()
        if complete.shape != self.spec.shape:
            raise SweepStoreError(f"{self.path}: complete has shape {complete.shape}, the spec {self.spec.shape}")
        self.done = complete.astype(bool)
        history = ds.attrs.get(CODE_ATTR)
        self.code_history = json.loads(history) if history is not None else None
        self._code_update, self._clear_marks = None, False
        self._layout = {n: tuple(v.dims) for n, v in ds.data_vars.items() if n not in ("complete", "cell_seconds")}
        self._labels = {n: c.values for n, c in ds.coords.items() if n not in self.spec.dims}
        if checked:
            damaged += self._damaged_cells()
            if damaged:
                for index, _ in damaged:
                    self.done[index] = False
                listed = "; ".join(f"{self._label(index)}: {why}" for index, why in damaged[:5])
                more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
                warnings.warn(f"{self.path}: {len(damaged)} cell(s) marked complete lost or damaged data since they "
                              f"were written ({listed}{more}); they are computed again", RuntimeWarning, stacklevel=3)
        return self

    def _labels_error(self, damaged: list[str]) -> SweepStoreError:
        return SweepStoreError(f"{self.path}: the labels of its cells were damaged since they were written "
                               f"({'; '.join(damaged)}), so its numbers cannot be told apart; run the spec into a "
                               "new store path, or delete this one and run it again")

    def _damaged_labels(self) -> list[str]:
        """The coordinates of a checksummed store whose chunk fails its checksum or cannot be decoded, with why."""
        import zarr

        try:
            group = zarr.open_group(self.path, mode="r", zarr_format=2)
            if group.attrs.get(CHECKSUM_ATTR) != CHECKSUM_VALUE:
                return []
            labels = [(name, arr) for name, arr in group.arrays() if arr.attrs.get("_ARRAY_DIMENSIONS") == [name]]
        except Exception:  # noqa: BLE001 - not a sweep store at all: the caller says so
            return []
        damaged = []
        for name, arr in labels:
            try:
                arr[...]
            except Exception as err:  # noqa: BLE001 - a failed checksum, an undecodable or a missing chunk
                damaged.append(f"{name}: {type(err).__name__}: {err}")
        return damaged

    def _label(self, index: tuple[int, ...]) -> str:
        values = [*self.spec.grid.values(), self.spec.seeds]
        return ", ".join(f"{d}={list(v)[i]}" for d, v, i in zip(self.spec.dims, values, index))

    def _marks_cellwise(self) -> tuple[np.ndarray, list[tuple[tuple[int, ...], str]]]:
        """``complete`` read cell by cell (its dims are the spec's, in order); an unreadable mark counts as not done."""
        import zarr

        arr = zarr.open_group(self.path, mode="r", zarr_format=2)["complete"]
        marks, damaged = np.zeros(self.spec.shape, dtype=bool), []
        for index in np.ndindex(*self.spec.shape):
            try:
                marks[index] = bool(arr[index])
            except Exception as err:  # noqa: BLE001 - a failed checksum or an undecodable chunk
                damaged.append((index, f"its completion mark is damaged ({type(err).__name__}: {err})"))
        return marks, damaged

    def _damaged_cells(self) -> list[tuple[tuple[int, ...], str]]:
        """The complete cells whose chunk of some variable is missing or fails its checksum, with the reason."""
        import zarr

        group = zarr.open_group(self.path, mode="r", zarr_format=2)
        arrays = {name: group[name] for name in [*self._layout, "cell_seconds"]}
        ncell = len(self.spec.dims)
        damaged = []
        for index in map(tuple, np.argwhere(self.done).tolist()):
            for name, arr in arrays.items():
                if 0 in arr.shape:
                    continue
                sep = getattr(arr.metadata, "dimension_separator", ".") or "."
                key = sep.join(map(str, (*index, *([0] * (arr.ndim - ncell)))))
                if not os.path.exists(os.path.join(self.path, name, key)):
                    damaged.append((index, f"{name} chunk {key} is missing"))
                    break
                try:
                    arr[index]
                except Exception as err:  # noqa: BLE001 - a failed checksum or an undecodable chunk
                    damaged.append((index, f"{name} chunk {key} is damaged ({type(err).__name__}: {err})"))
                    break
        return damaged

    def _mismatch(self, stored: dict[str, Any], stored_hash: str) -> str:
        new = self.spec.to_dict()
        diff = [k for k in sorted(set(stored) | set(new)) if stored.get(k) != new.get(k)]
        lines = [f"  {k}: store has {stored.get(k)!r}, this spec {new.get(k)!r}" for k in diff]
        return (f"{self.path} was written by another sweep spec (hash {stored_hash}, this spec {self.hash}):\n"
                + ("\n".join(lines) if lines else "  (same fields; a pipeline callable or the store version differs)")
                + "\nUse a new --store path for the new spec, or rerun the store's own spec to complete it.")

    # -------------------------------------------------------------------------------------- the code of the cells
    def written_by_other_code(self) -> bool:
        """Whether the store's complete cells were computed under code records other than this process's alone."""
        return bool(self.done.any()) and self.code_history != [code_record()]

    def prepare_code(self, on_code_change: str = "refuse") -> None:
        """Check the code the store's complete cells were computed under before computing more (see the module doc).

        Raises :class:`SweepStoreError` (``"refuse"``) when they came from another code record than this process's;
        ``"recompute"`` marks every cell pending, ``"continue"`` only records the new code. What changes on disk
        (marks cleared, ``code_history``) is written just before the next cell, so a run that computes nothing
        leaves the store as it was.
        """
        if on_code_change not in ON_CODE_CHANGE:
            raise ValueError(f"on_code_change={on_code_change!r} must be one of {ON_CODE_CHANGE}")
        if self._layout is None:  # a new store: created with this process's record
            return
        now, history = code_record(), self.code_history
        if not self.done.any():  # nothing computed under other code: the store becomes this code's
            self._code_update = None if history == [now] else [now]
        elif history == [now]:
            return
        elif on_code_change == "recompute":
            self.done[...] = False
            self._clear_marks, self._code_update = True, [now]
        elif self.done.all() or (history is not None and now in history):
            return  # nothing to compute (reading never refuses), or this code's cells are already on record
        elif history is None:
            warnings.warn(f"{self.path}: the code its {int(self.done.sum())} complete cell(s) were computed with is "
                          "not recorded (the store was written before freeinit_lab recorded it); the missing cells "
                          "are computed with this process's code, and code_history records both from now on",
                          RuntimeWarning, stacklevel=3)
            self._code_update = [{"code_digest": None, "note": "cells computed before the code was recorded"}, now]
        elif on_code_change == "continue":
            self._code_update = [*history, now]
        else:
            raise SweepStoreError(self._code_mismatch(history, now))

    def _code_mismatch(self, history: list[dict[str, Any]], now: dict[str, Any]) -> str:
        n = int(self.done.sum())
        what = ("other code than this process runs" if len(history) == 1 else
                f"{len(history)} codes (code_history), none of them this process's; the latest against it")
        return (f"{self.path}: its {n} complete cell(s) were computed under {what}:\n"
                + "\n".join(_code_changes(history[-1], now))
                + "\nCells computed now would sit beside them with nothing telling them apart. Either write to a new "
                  "store path (this one stays readable as it is), or pass on_code_change='recompute' (command line: "
                  "--on-code-change recompute) to compute every cell again under this code, or "
                  "on_code_change='continue' (--on-code-change continue) to compute only the missing cells and "
                  "record both codes in the store's code_history.")

    def _apply_code_update(self) -> None:
        """Before the next cell: clear the old cells' marks ("recompute"), then record the code in the attrs."""
        import zarr

        if self._clear_marks:
            marks = self._arrays()["complete"]
            marks[...] = np.zeros(marks.shape, dtype=marks.dtype)
            self._clear_marks = False
        if self._code_update is not None:
            group = zarr.open_group(self.path, mode="r+", zarr_format=2)
            group.attrs[CODE_ATTR] = json.dumps(self._code_update, sort_keys=True)
            zarr.consolidate_metadata(self.path, zarr_format=2)
            self.code_history, self._code_update = self._code_update, None

    # ---------------------------------------------------------------------------------------------- writing
    def _create(self, result: xr.Dataset) -> None:
        from numcodecs import CRC32

        spec = self.spec
        cell_dims, cell_shape = spec.dims, spec.shape
        coords: dict[str, Any] = {k: (k, np.asarray(list(v))) for k, v in spec.grid.items()}
        coords["seed"] = ("seed", np.asarray(spec.seeds, dtype=np.int64), {"long_name": "sweep seed"})
        for name, c in result.coords.items():
            coords[name] = c.variable
        data_vars: dict[str, Any] = {}
        encoding: dict[str, dict[str, Any]] = {}
        for name, v in result.data_vars.items():
            data_vars[name] = (cell_dims + v.dims, np.full(cell_shape + v.shape, _fill(v.dtype), dtype=v.dtype),
                               dict(v.attrs))
            encoding[name] = {"chunks": (1,) * len(cell_dims) + v.shape, "filters": [CRC32()]}
        data_vars["complete"] = (cell_dims, np.zeros(cell_shape, dtype=bool),
                                 {"long_name": "cell written completely (its data is valid)"})
        data_vars["cell_seconds"] = (cell_dims, np.full(cell_shape, np.nan),
                                     {"long_name": "wall time of the cell's study call", "units": "s"})
        for name in ("complete", "cell_seconds"):
            encoding[name] = {"chunks": (1,) * len(cell_dims), "filters": [CRC32()]}
        for name in coords:  # the labels too: a flipped bit would put every number under another setting
            encoding[name] = {"filters": [CRC32()]}
        import freeinit_lab as fl

        attrs = {
            "title": f"freeinit_lab sweep: study {spec.study!r}",
            "study": spec.study,
            "pipeline": spec.pipeline_factory().key,
            "sweep_spec": json.dumps(spec.to_dict(), sort_keys=True),
            "sweep_spec_hash": self.hash,
            "cell_dims": list(cell_dims),
            "videos_per_seed": int(spec.videos_per_seed),
            "freeinit_lab_version": getattr(fl, "__version__", "?"),
            CODE_ATTR: json.dumps([code_record()], sort_keys=True),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            CHECKSUM_ATTR: CHECKSUM_VALUE,
        }
        template = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        # written beside the store and moved into place whole: a run stopped while creating it (interrupted, killed,
        # disk full) leaves no half-made store that the next run would refuse as unreadable or as damaged labels
        building = f"{self.path.rstrip('/' + os.sep)}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            template.to_zarr(building, mode="w", encoding=encoding, zarr_format=2, consolidated=True)
            if os.path.isdir(self.path):  # an empty folder (``exists`` is False): replaced
                os.rmdir(self.path)
            os.rename(building, self.path)
        except BaseException:
            _remove_stray(building)
            raise
        self._layout = {n: tuple(v.dims) for n, v in template.data_vars.items()
                        if n not in ("complete", "cell_seconds")}
        self._labels = {n: np.asarray(c.values) for n, c in result.coords.items()}
        self.code_history, self._code_update, self._clear_marks = [code_record()], None, False

    def _arrays(self) -> dict[str, Any]:
        """The store's zarr arrays by name, opened once (a lookup per write would cost more than the write)."""
        if self._group is None:
            import zarr

            group = zarr.open_group(self.path, mode="r+", zarr_format=2)
            # a chunk equal to the fill value is written too: a missing chunk then always means a lost one
            with zarr.config.set({"array.write_empty_chunks": True}):
                self._group = {name: group[name] for name in [*self._layout, "complete", "cell_seconds"]}
        return self._group

    def _check(self, result: xr.Dataset, cell: Cell) -> None:
        expected = {n: d[len(self.spec.dims):] for n, d in self._layout.items()}
        got = {n: tuple(v.dims) for n, v in result.data_vars.items()}
        if set(got) != set(expected) or any(set(got[n]) != set(expected[n]) for n in got):
            raise SweepResultError(f"cell ({cell.label}) returned variables {got}; the store holds {expected}. A "
                                   "study's variables and dims must not depend on the cell's settings")
        for name, value in self._labels.items():
            if name in result.coords and not np.array_equal(np.asarray(result.coords[name].values), value):
                raise SweepResultError(f"cell ({cell.label}) labels {name} as {result.coords[name].values.tolist()}, "
                                       f"the store as {value.tolist()}; a study's labels must not depend on the cell")
        for name, v in result.data_vars.items():
            stored_dtype = self._arrays()[name].dtype
            if not np.can_cast(v.dtype, stored_dtype, casting="safe"):  # e.g. fractions into an int store: truncated
                raise SweepResultError(f"cell ({cell.label}): {name} has dtype {v.dtype}, the store {stored_dtype} "
                                       "(set by the first cell written); a study's dtypes must not depend on the "
                                       "cell: return one dtype (e.g. float64) for every cell")
            for dim, size in zip(v.dims, v.shape):
                stored = self._arrays()[name].shape[len(self.spec.dims) + expected[name].index(dim)]
                if size != stored:
                    raise SweepResultError(f"cell ({cell.label}): {name} has {dim} of size {size}, the store {stored}")

    def write(self, cell: Cell, result: xr.Dataset, seconds: float) -> None:
        """Write one cell's result into its region, then its completion mark."""
        if self._layout is None:
            self._create(result)
        self._check(result, cell)
        self._apply_code_update()
        group = self._arrays()
        index = tuple(cell.index)
        for name, v in result.data_vars.items():
            order = self._layout[name][len(self.spec.dims):]
            arr = group[name]
            arr[index] = np.asarray(v.transpose(*order).values, dtype=arr.dtype)
        group["cell_seconds"][index] = float(seconds)
        group["complete"][index] = np.asarray(True, dtype=group["complete"].dtype)
        self.done[index] = True

    @contextmanager
    def writer_lock(self):
        """Hold ``<store>.lock`` while writing: one run per store at a time.

        A lock left by a run that died on this host (its pid is gone) is taken over; a live one, or one from another
        host, is refused with the way out. The lock appears with its owner already in it: the owner is written to a
        file of this process's own and hard-linked to ``<store>.lock`` (which fails if that exists), so no other run
        ever reads an empty lock, and a run that dies while taking it leaves none (where the file system has no
        hard links, the lock is created empty and then written, as before).
        """
        # one lock per store, however its path is spelled (a symlink, a relative path, a trailing slash)
        lock = os.path.realpath(self.path.rstrip("/\\")) + ".lock"
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        parent = os.path.dirname(os.path.abspath(lock))
        os.makedirs(parent, exist_ok=True)
        while True:
            try:
                fd = self._create_lock(lock, me)
            except FileExistsError:
                other = _lock_owner(lock) or {}
                if other.get("host") == me["host"] and isinstance(other.get("pid"), int) and not _alive(other["pid"]):
                    # left by a run that died here. Two runs may both find it dead: each re-reads it under a guard
                    # and removes it only if it is still the dead run's, so the second never removes the lock the
                    # first has taken meanwhile (both would then write the store)
                    with _directory_guard(parent):
                        if _lock_owner(lock) == other:
                            with suppress(FileNotFoundError):
                                os.remove(lock)
                    continue
                raise SweepStoreError(
                    f"{self.path} is being written by another run (pid {other.get('pid', '?')} on "
                    f"{other.get('host', '?')}; lock file {lock}). Wait for it to finish; if that run is gone, delete "
                    "the lock file and run again."
                ) from None
            if fd is not None:  # no hard links here: the lock was created empty; write its owner now
                with os.fdopen(fd, "w") as fh:
                    json.dump(me, fh)
            break
        try:
            yield self
        finally:
            with suppress(FileNotFoundError):
                os.remove(lock)

    @staticmethod
    def _create_lock(lock: str, me: dict) -> int | None:
        """Create ``lock`` holding ``me`` at once (``None``), or, on a file system without hard links, empty (the
        open descriptor, for the caller to write); raises ``FileExistsError`` if it exists."""
        tmp = f"{lock}.{me['pid']}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w") as fh:
            json.dump(me, fh)
        try:
            os.link(tmp, lock)
            return None
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system
            return os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        finally:
            with suppress(FileNotFoundError):
                os.remove(tmp)

    def dataset(self) -> xr.Dataset:
        """The store, opened lazily (``xr.open_zarr`` without dask chunks)."""
        return xr.open_zarr(self.path, chunks=None)

