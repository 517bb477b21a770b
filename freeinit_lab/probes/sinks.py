"""Where a probe's step records go: memory, or a zarr store laid out as the final record; one ``add(record)``."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch
import xarray as xr

from freeinit_lab._extras import require
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
    """Streams each kept step into a zarr store laid out as the final record.

    The step axis holds the *stored* steps only: a step index gets the next position the first time any pass
    stores it, and the ``step`` coordinate holds the index (with ``every > 1`` no row is left for skipped steps,
    so plain ``xr.open_zarr`` shows the record as :meth:`LatentProbe.to_xarray` does). Positions follow arrival
    order, which is step order unless passes of different lengths keep different last steps; readers sort by
    ``step``. Every array carries the ``crc32c`` checksum codec and every written chunk is stored, also one that
    holds only NaN (``write_empty_chunks``), so a damaged or deleted chunk is an error, never NaN.
    """

    _PASS_FIELDS = ("call", "run", "freeinit_iteration", "seed", "num_steps")
    streams = True

    def __init__(self, path: str | os.PathLike, layout: _RecordLayout, identity: Mapping[str, Any]) -> None:
        from freeinit_lab.probes.io import _describe_existing

        require("zarr", "LatentProbe(store=...)")  # before sampling starts, not at its first step
        self.layout = layout
        self.path = os.fspath(path)
        self.identity = dict(identity)
        if os.path.lexists(self.path):
            raise FileExistsError(
                f"LatentProbe: cannot stream to {self.path!r}, the probe never writes over what is there: "
                f"{_describe_existing(self.path)}."
            )
        self.group = None
        self.sealed = False  # its metadata digests written (the probe closed): nothing changes it any more
        self.nbytes = 0  # bytes held in memory: none
        self.disk_bytes = 0
        self.shape = (0, 0)
        self.positions: dict[int, int] = {}  # step index -> position on the step axis

    def _array(self, name: str, shape, chunks, dtype, fill_value, dims):
        from zarr.codecs import Crc32cCodec

        dims = (dims,) if isinstance(dims, str) else tuple(dims)  # one dim's name, not its letters
        return self.group.create_array(
            name, shape=shape, chunks="auto" if chunks is None else chunks, dtype=dtype, fill_value=fill_value, dimension_names=list(dims),
            compressors=[Crc32cCodec()], config={"write_empty_chunks": True},
        )

    def _create(self, names: Sequence[str], dims: Sequence[str], item_shape: tuple[int, ...], np_dtype) -> None:
        import zarr

        # the store names its capture and is marked incomplete in the same write that creates it: a process killed
        # at any later point leaves a store recognisably ours (save_record may replace it) and marked unfinished
        self.group = zarr.open_group(self.path, mode="w-", attributes={**self.identity, "complete": 0})
        self.data = {}
        coords = "timestep " + " ".join(self._PASS_FIELDS)
        for n in names:
            arr = self._array(n, (0, 0, *item_shape), (1, 1, *item_shape), np_dtype, np.nan, dims)
            arr.attrs.update({**_SITE_ATTRS.get(n, {}), "coordinates": coords})
            self.data[n] = arr
        self.timestep = self._array("timestep", (0, 0), (16, 256), "float64", np.nan, ["iteration", "step"])
        self.step = self._array("step", (0,), (1024,), "int64", -1, ["step"])
        self.iteration = self._array("iteration", (0,), (1024,), "int64", -1, ["iteration"])
        self.passes = {f: self._array(f, (0,), (1024,), "int64", -1, ["iteration"]) for f in self._PASS_FIELDS}
        self.step_coords: dict[str, Any] = {}  # alpha, sigma, ... over (iteration, step), from write_attrs

    def _position(self, step: int) -> int:
        pos = self.positions.get(step)
        if pos is None:
            pos = self.positions[step] = len(self.positions)
            self._grow(0, pos)
            self.step[pos] = step
        return pos

    def _grow(self, iteration: int, pos: int) -> None:
        n_it, n_st = self.shape
        if iteration < n_it and pos < n_st:
            return
        new = (max(n_it, iteration + 1), max(n_st, pos + 1))
        for arr in self.data.values():
            arr.resize((*new, *arr.shape[2:]))
        self.timestep.resize(new)
        for arr in self.step_coords.values():  # kept the record's shape: readable if the process dies before a sync
            arr.resize(new)
        if new[1] != n_st:
            self.step.resize((new[1],))
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
        pos = self._position(rec.step)
        self._grow(rec.iteration, pos)
        for n, a in rec.arrays.items():
            self.data[n][rec.iteration, pos] = a.numpy()
            self.disk_bytes += a.numel() * a.element_size()
        self.timestep[rec.iteration, pos] = rec.timestep  # last: a step counts as stored once its data is

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
            if name not in self.group:  # NaN (unknown) where a pass grows the record before the next sync
                self._array(name, values.shape, None, values.dtype, np.nan if values.dtype.kind == "f" else 0, dims)
            arr = self.group[name]
            if tuple(dims) == ("iteration", "step"):
                self.step_coords[name] = arr
            if arr.shape != values.shape:
                arr.resize(values.shape)
            arr[...] = values
            arr.attrs.update(dict(vattrs))

    def open(self) -> xr.Dataset:
        ds = xr.open_zarr(self.path, consolidated=False, chunks=None)
        return ds.sortby("step") if ds.sizes.get("step", 0) > 1 else ds
