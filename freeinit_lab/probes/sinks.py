"""Where a probe's step records go: memory, or a zarr store laid out as the final record; one ``add(record)``."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch
import xarray as xr

from freeinit_lab.probes.record import _SITE_ATTRS

__all__ = ["RecordSink"]


@dataclasses.dataclass
class _PassInfo:
    call: int
    run: int
    freeinit_iteration: int
    seed: int
    num_steps: int


@dataclasses.dataclass
class _Record:
    iteration: int
    step: int
    timestep: float
    arrays: dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class _RecordLayout:
    """What every record of one probe looks like: variable names, their dims and the stored dtype."""

    names: tuple[str, ...]
    dims: tuple[str, ...]
    np_dtype: np.dtype


class RecordSink(Protocol):
    """Where a probe's step records go: ``add(record)`` for each kept step; ``nbytes`` held in memory.

    ``streams`` tells whether the record lives outside memory (then :meth:`LatentProbe.to_xarray` reads it back).
    """

    streams: bool
    nbytes: int

    def add(self, rec: _Record) -> None: ...


class _MemorySink:
    """Keeps each kept step as CPU tensors; assembles the dense record on demand."""

    streams = False

    def __init__(self, layout: _RecordLayout) -> None:
        self.layout = layout
        self.records: list[_Record] = []
        self.nbytes = 0

    def add(self, rec: _Record) -> None:
        self.records.append(rec)
        self.nbytes += sum(a.numel() * a.element_size() for a in rec.arrays.values())

    def kept_steps(self) -> list[int]:
        return sorted({r.step for r in self.records})

    def arrays(self, num_passes: int, item_shape: tuple[int, ...]) -> tuple:
        names, np_dtype = self.layout.names, self.layout.np_dtype
        steps = self.kept_steps()
        pos = {s: i for i, s in enumerate(steps)}
        data = {n: np.full((num_passes, len(steps), *item_shape), np.nan, dtype=np_dtype) for n in names}
        timestep = np.full((num_passes, len(steps)), np.nan)
        for r in self.records:
            j = pos[r.step]
            timestep[r.iteration, j] = r.timestep
            for n in names:
                data[n][r.iteration, j] = r.arrays[n].numpy()
        return np.asarray(steps, dtype=np.int64), timestep, data


class _ZarrSink:
    """Streams each kept step into a zarr store laid out as the final record (step axis = step index)."""

    _PASS_FIELDS = ("call", "run", "freeinit_iteration", "seed", "num_steps")
    streams = True

    def __init__(self, path: str | os.PathLike, layout: _RecordLayout) -> None:
        self.layout = layout
        self.path = os.fspath(path)
        if os.path.exists(self.path):
            raise FileExistsError(
                f"LatentProbe: store {self.path!r} already exists; pass a new path or delete it first "
                "(the probe never overwrites a record)"
            )
        self.group = None
        self.nbytes = 0  # bytes held in memory: none
        self.disk_bytes = 0
        self.shape = (0, 0)

    def _create(self, names: Sequence[str], dims: Sequence[str], item_shape: tuple[int, ...], np_dtype) -> None:
        import zarr

        self.group = zarr.open_group(self.path, mode="w-")
        self.data = {}
        coords = "timestep " + " ".join(self._PASS_FIELDS)
        for n in names:
            arr = self.group.create_array(
                n,
                shape=(0, 0, *item_shape),
                chunks=(1, 1, *item_shape),
                dtype=np_dtype,
                fill_value=np.nan,
                dimension_names=list(dims),
                compressors=None,
            )
            arr.attrs.update({**_SITE_ATTRS.get(n, {}), "coordinates": coords})
            self.data[n] = arr
        self.timestep = self.group.create_array(
            "timestep", shape=(0, 0), chunks=(16, 256), dtype="float64", fill_value=np.nan,
            dimension_names=["iteration", "step"],
        )
        self.step = self.group.create_array(
            "step", shape=(0,), chunks=(1024,), dtype="int64", fill_value=-1, dimension_names=["step"]
        )
        self.iteration = self.group.create_array(
            "iteration", shape=(0,), chunks=(1024,), dtype="int64", fill_value=-1, dimension_names=["iteration"]
        )
        self.passes = {
            f: self.group.create_array(
                f, shape=(0,), chunks=(1024,), dtype="int64", fill_value=-1, dimension_names=["iteration"]
            )
            for f in self._PASS_FIELDS
        }

    def _grow(self, iteration: int, step: int) -> None:
        n_it, n_st = self.shape
        if iteration < n_it and step < n_st:
            return
        new = (max(n_it, iteration + 1), max(n_st, step + 1))
        for arr in self.data.values():
            arr.resize((*new, *arr.shape[2:]))
        self.timestep.resize(new)
        if new[1] != n_st:
            self.step.resize((new[1],))
            self.step[n_st:] = np.arange(n_st, new[1])
        if new[0] != n_it:
            self.iteration.resize((new[0],))
            self.iteration[n_it:] = np.arange(n_it, new[0])
            for arr in self.passes.values():
                arr.resize((new[0],))
        self.shape = new

    def add(self, rec: _Record) -> None:
        if self.group is None:
            item_shape = tuple(next(iter(rec.arrays.values())).shape)
            self._create(self.layout.names, self.layout.dims, item_shape, self.layout.np_dtype)
        self._grow(rec.iteration, rec.step)
        for n, a in rec.arrays.items():
            self.data[n][rec.iteration, rec.step] = a.numpy()
            self.disk_bytes += a.numel() * a.element_size()
        self.timestep[rec.iteration, rec.step] = rec.timestep

    def write_passes(self, passes: list[_PassInfo]) -> None:
        if self.group is None or not passes:
            return
        self._grow(len(passes) - 1, 0)
        for f, arr in self.passes.items():
            arr[: len(passes)] = np.asarray([getattr(p, f) for p in passes], dtype=np.int64)

    def write_attrs(self, attrs: Mapping[str, Any], extra_coords: Mapping[str, tuple]) -> None:
        if self.group is None:
            return
        self.group.attrs.update(dict(attrs))
        for name, (dims, values, vattrs) in extra_coords.items():
            values = np.asarray(values)
            if name not in self.group:
                self.group.create_array(
                    name, shape=values.shape, dtype=values.dtype, dimension_names=list(dims), fill_value=0
                )
            arr = self.group[name]
            if arr.shape != values.shape:
                arr.resize(values.shape)
            arr[...] = values
            arr.attrs.update(dict(vattrs))

    def open(self) -> xr.Dataset:
        ds = xr.open_zarr(self.path, consolidated=False, chunks=None)
        kept = np.flatnonzero(np.isfinite(ds["timestep"].values).any(axis=0))
        return ds.isel(step=kept)
