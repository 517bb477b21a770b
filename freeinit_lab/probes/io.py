"""Save and load probe records (``xarray.Dataset``) to NetCDF or zarr, bit-identically and checked.

NetCDF has no half-precision type, so float16 variables (``LatentProbe(dtype=torch.float16)``) are written as
their raw 16-bit patterns (``uint16``) with the attribute ``freeinit_lab_dtype = "float16"`` and viewed back as
float16 on load: every bit, NaN padding included, survives. zarr stores float16 natively.

Integrity
---------
- **Checksums.** Every numeric NetCDF variable with at least one dim is written with HDF5's ``fletcher32``
  checksum, and every zarr array with zarr 3's ``crc32c`` codec, so damaged bytes raise
  :class:`DamagedRecordError` naming the file instead of loading as wrong values. (Scalar and string NetCDF
  variables are stored without a checksum: HDF5 only checksums chunked storage.)
- **Metadata.** HDF5 checksums a NetCDF file's headers itself. A zarr record written by :func:`save_record` carries
  the SHA-256 digests of its metadata in the root attribute ``freeinit_lab_metadata_sha256``: one per root
  attribute, one for the rest of the group's ``zarr.json`` and one per array's ``zarr.json`` (dims, shape, dtype,
  fill value, codecs, attributes such as ``long_name``), checked on load, so a changed attribute or array
  description raises :class:`DamagedRecordError` naming it. A store streamed by ``LatentProbe(store=...)`` gets the
  same digests when its probe closes (its metadata changes while it is written, so a capture still running or killed
  is unchecked); one that says it finished (``complete = 1``) without them is refused as damaged. Records saved
  before the digest (``freeinit_lab_record`` = 1) and stores streamed before it (no ``freeinit_lab_stream``
  attribute) have none: their metadata loads unchecked, as before; ``save_record(load_record(path), "copy.zarr")``
  writes a checked copy.
- **Length.** A NetCDF-4 file's length is checked against the end-of-file address its HDF5 superblock records
  before every open, so a truncated file raises :class:`DamagedRecordError` also where HDF5 skips its own check
  (it reuses a file netCDF-C left open after an earlier failed open of the same file in the process).
- **Held files.** HDF5 opens a file once per process and reuses that open for the same inode, so a NetCDF file
  held open (loaded lazily, or left open by netCDF-C after a failed open) and rewritten in place since (``cp``
  keeps the inode) would load as what it was, or as a mix of old attributes and new values. Such a file is read
  through a private copy, and the handle a failed open leaves is closed (``freeinit_lab.probes._hdf5``).
- **Nothing missing.** zarr records list their variables in an attribute and store every chunk (also chunks that
  hold only the fill value), so a deleted array or chunk is reported, not read back as NaN.
- **Completeness.** ``num_steps_stored`` (the number of ``(iteration, step)`` entries with a timestep) is written
  with every record that has a ``step`` dim and checked on load; ``complete`` (1 or 0) says whether the capture
  finished: set it with :func:`mark_complete`. :func:`load_record` warns (:class:`IncompleteRecordWarning`) on a
  record marked incomplete, and raises :class:`EmptyRecordError` for a streamed capture that stopped before it
  stored a step (there is nothing to load). A streamed capture killed while it grew its arrays is read up to the
  shortest of them (the rows beyond hold no stored step).
- **Overwriting.** ``overwrite=True`` only replaces a record this library wrote (it carries the attribute
  ``freeinit_lab_record``; a store streamed by ``LatentProbe(store=...)`` is recognised by its run metadata, written
  with the store itself, so also the leftover of a capture killed before its first step); anything else at the path
  is refused. The new record is written beside the old one and swapped in only once it is complete, so a failed
  save never destroys the previous record.

>>> save_record(ds, "run.nc"); ds2 = load_record("run.nc")  # doctest: +SKIP
>>> save_record(ds, "run.zarr"); ds3 = load_record("run.zarr")  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from typing import Any, Literal

import numpy as np
import xarray as xr

from freeinit_lab._extras import require

__all__ = [
    "save_record",
    "load_record",
    "mark_complete",
    "DamagedRecordError",
    "EmptyRecordError",
    "IncompleteRecordWarning",
    "RECORD_MARKER",
]

_DTYPE_ATTR = "freeinit_lab_dtype"
#: Root attribute that marks a record written by :func:`save_record` (value: the io layout version).
RECORD_MARKER = "freeinit_lab_record"
#: 2: zarr records carry the digest of their metadata (``_METADATA_ATTR``)
_IO_VERSION = 2
_VARIABLES_ATTR = "freeinit_lab_variables"
_DATAARRAY_ATTR = "freeinit_lab_dataarray"
_METADATA_ATTR = "freeinit_lab_metadata_sha256"
#: Root attribute of a store streamed by LatentProbe(store=...) that is sealed with ``_METADATA_ATTR`` when its probe
#: closes (value: 1); written with the store itself.
STREAM_MARKER = "freeinit_lab_stream"
_UNNAMED = "__unnamed__"
_INTERNAL_ATTRS = (RECORD_MARKER, _VARIABLES_ATTR, _DATAARRAY_ATTR, _METADATA_ATTR, STREAM_MARKER)
COMPLETE_ATTR = "complete"
STEPS_ATTR = "num_steps_stored"
#: Attributes that a store streamed by LatentProbe(store=...) carries from its creation (written with the group, in
#: one metadata write; stores streamed by earlier versions carry them from their first sync, after a pipeline call).
_STREAMED_ATTRS = ("record_version", "capture", "mode")
Format = Literal["netcdf", "zarr"]
#: The library each format is read and written with (an optional dependency: the ``storage`` extra).
_BACKENDS = {"netcdf": ("netCDF4", "NetCDF"), "zarr": ("zarr", "zarr")}


class DamagedRecordError(OSError):
    """A record's bytes fail their checksum, or parts of it are missing or truncated."""


class IncompleteRecordWarning(UserWarning):
    """A record marked ``complete = 0``: the capture stopped before it finished."""


class EmptyRecordError(FileNotFoundError):
    """A path holds no record to load: a streamed capture that stopped before storing a step, or an empty folder."""


def _format_of(path: str, format: Format | None) -> Format:
    if format is not None:
        if format not in ("netcdf", "zarr"):
            raise ValueError(f"format must be 'netcdf' or 'zarr'; got {format!r}")
        return format
    lower = path.lower().rstrip("/")
    if lower.endswith(".zarr") or (os.path.isdir(path) and os.path.exists(os.path.join(path, "zarr.json"))):
        return "zarr"
    if lower.endswith((".nc", ".nc4", ".netcdf", ".cdf")):
        return "netcdf"
    raise ValueError(
        f"cannot tell the format of {path!r} from its name; use a .nc or .zarr suffix or pass format='netcdf' or "
        "format='zarr'"
    )


# ----------------------------------------------------------------------------------------------------------------
# completeness
# ----------------------------------------------------------------------------------------------------------------
def _count_steps(ds: xr.Dataset) -> int | None:
    """``(iteration, step)`` entries holding a step: finite timesteps, or every cell without a timestep."""
    if "step" not in ds.dims:
        return None
    if "timestep" in ds.variables:
        return int(np.isfinite(np.asarray(ds["timestep"].values, dtype=np.float64)).sum())
    return int(ds.sizes["step"] * ds.sizes.get("iteration", 1))


def mark_complete(
    record: xr.Dataset | str | os.PathLike, *, complete: bool = True, steps: int | None = None
) -> xr.Dataset | None:
    """Mark a record as finished (``complete = 1``) or stopped early (``complete = 0``), with its step count.

    For a capture to call when it ends: ``complete=True`` only when every planned step was recorded.

    Parameters
    ----------
    record
        A dataset (a marked copy is returned) or the path of a zarr store, e.g. one streamed by
        ``LatentProbe(store=...)`` (its attributes are updated in place; returns None). A sealed record (written by
        :func:`save_record`, or streamed by a probe that has closed) has its metadata checked first and its metadata
        digests renewed in the same write as the change.
    complete
        Whether the capture finished.
    steps
        ``num_steps_stored``; default: counted from the data (``(iteration, step)`` entries with a finite
        ``timestep``).

    Returns
    -------
    xarray.Dataset or None

    Examples
    --------
    >>> ds = xr.Dataset(coords={"timestep": (("iteration", "step"), [[999.0, 500.0, np.nan]])})
    >>> mark_complete(ds, complete=False).attrs
    {'complete': 0, 'num_steps_stored': 2}
    """
    if isinstance(record, (xr.Dataset, xr.DataArray)):
        counted = steps if steps is not None else _count_steps(record if isinstance(record, xr.Dataset)
                                                                 else record.to_dataset(name="x"))
        attrs = {COMPLETE_ATTR: int(bool(complete))}
        if counted is not None:
            attrs[STEPS_ATTR] = int(counted)
        return record.assign_attrs(attrs)
    path = os.fspath(record)
    if _format_of(path, None) != "zarr":
        raise ValueError(
            f"mark_complete updates zarr stores in place; for {path!r} load it, mark the dataset and save it again: "
            "save_record(mark_complete(load_record(path)), path, overwrite=True)"
        )
    zarr = require("zarr", "updating a zarr record")
    group = zarr.open_group(path, mode="r+")
    if steps is None:
        timestep = group["timestep"][...] if "timestep" in group else None
        steps = None if timestep is None else int(np.isfinite(np.asarray(timestep, dtype=np.float64)).sum())
    attrs = {COMPLETE_ATTR: int(bool(complete))}
    if steps is not None:
        attrs[STEPS_ATTR] = int(steps)
    if _METADATA_ATTR in group.attrs:  # sealed: its metadata checked before the change, its digests renewed with it
        _check_zarr_metadata(path)
        attrs[_METADATA_ATTR] = _zarr_metadata_digests(path, attrs)
    group.attrs.update(attrs)  # one metadata write: the flag and its digests change together
    return None


def seal_store(path: str | os.PathLike) -> None:
    """Add the SHA-256 digests of a finished zarr store's metadata (``freeinit_lab_metadata_sha256``), so that
    :func:`load_record` refuses any later change to it; called by ``LatentProbe(store=...)`` when its block closes.

    The digests cover every root attribute, the rest of the group's ``zarr.json`` and every array's ``zarr.json``
    (the data chunks carry their own ``crc32c`` checksums).
    """
    zarr = require("zarr", "sealing a zarr record")
    path = os.fspath(path)
    zarr.open_group(path, mode="r+").attrs.update({_METADATA_ATTR: _zarr_metadata_digests(path)})


# ----------------------------------------------------------------------------------------------------------------
# save
# ----------------------------------------------------------------------------------------------------------------
def _as_dataset(obj: Any) -> xr.Dataset:
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else _UNNAMED
        if name in obj.coords:
            raise ValueError(f"the DataArray's name {name!r} is also one of its coords; rename it (da.rename('x'))")
        ds = obj.to_dataset(name=name)
        return ds.assign_attrs({**obj.attrs, _DATAARRAY_ATTR: str(name)})
    raise TypeError(
        f"save_record takes an xarray.Dataset (e.g. LatentProbe.to_xarray()) or an xarray.DataArray; got "
        f"{type(obj).__name__}. For a dict of arrays build xr.Dataset(...) first; for a tensor, wrap it in an "
        "xarray.DataArray with named dims."
    )


def _check_folder(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        raise FileNotFoundError(
            f"cannot save {path!r}: the folder {folder!r} does not exist; create it first "
            f"(os.makedirs({folder!r}, exist_ok=True)) or choose another path"
        )
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"cannot save {path!r}: {folder!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot save {path!r}: the folder {folder!r} is not writable by this user")


def _zarr_root_attrs(path: str) -> dict | None:
    meta = os.path.join(path, "zarr.json")
    try:
        with open(meta, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc.get("attributes", {}) if isinstance(doc, dict) and doc.get("node_type") == "group" else None


def _netcdf_root_attrs(path: str) -> dict | None:
    try:
        import netCDF4

        with _netcdf_open(path, lazy=False) as target, netCDF4.Dataset(target, "r") as f:
            return {k: f.getncattr(k) for k in f.ncattrs()}
    except Exception:  # noqa: BLE001 - unreadable or not NetCDF: not one of ours
        return None


#: ``(device, inode) -> (size, mtime_ns)`` of each NetCDF file as this process last opened it, and the files whose
#: open failed (netCDF-C then leaves them open in HDF5): see :func:`_netcdf_open`
_NETCDF_OPENED: dict[tuple[int, int], tuple[int, int]] = {}
_NETCDF_FAILED: set[tuple[int, int]] = set()


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


@contextlib.contextmanager
def _netcdf_open(path: str, *, lazy: bool):
    """The path to open a NetCDF file through: the file itself, or a private copy where HDF5 in this process holds it
    open in a state that may not be the file's now.

    HDF5 opens a file once per process and reuses that open, metadata cache included, for the same device and inode
    (:mod:`freeinit_lab.probes._hdf5`). So a file that is held open (lazily loaded, or left open by netCDF-C after a
    failed open) and was rewritten in place since would load as what it was, or as a mix of both. Such a file is read
    through a copy (deleted after a full load, at exit after a lazy one). After a failed open, the handle netCDF-C
    leaves is closed. Its length is checked first (:func:`_check_hdf5_length`), for every caller. Where the HDF5 library cannot be reached, the same is judged from this process's own opens.
    """
    from freeinit_lab.probes import _hdf5

    _check_hdf5_length(path)  # a truncated file is not opened: HDF5 may not see it (see _check_hdf5_length)
    st = os.stat(path)
    key, state = (st.st_dev, st.st_ino), (st.st_size, st.st_mtime_ns)
    before = _hdf5.open_file_ids()
    if before is None:
        stale = key in _NETCDF_FAILED or _NETCDF_OPENED.get(key, state) != state
    else:
        stale = bool(_hdf5.held_files(path, before)) and _NETCDF_OPENED.get(key) != state
    target = path
    if stale:
        fd, target = tempfile.mkstemp(prefix="freeinit_lab_", suffix=os.path.splitext(path)[1] or ".nc")
        os.close(fd)
        shutil.copyfile(path, target)
    try:
        yield target
    except BaseException:
        after = _hdf5.open_file_ids()
        if after is None:
            _NETCDF_FAILED.add(key)
        else:
            _hdf5.close_files([fid for fid in _hdf5.held_files(target, after) or [] if fid not in before])
        if target != path:
            _remove_quietly(target)
        raise
    if target == path:
        _NETCDF_OPENED[key] = state
    elif lazy:
        atexit.register(_remove_quietly, target)
    else:
        _remove_quietly(target)


def _is_our_record(attrs: dict | None) -> bool:
    if not attrs:
        return False
    return RECORD_MARKER in attrs or all(k in attrs for k in _STREAMED_ATTRS)


def _unfinished_capture(path: str) -> tuple[bool, int | None]:
    """Whether ``path`` holds an unfinished streamed capture (``complete = 0``, not written by :func:`save_record`),
    and how many ``(iteration, step)`` entries it stored: finite timesteps on disk, 0 without a timestep array, None
    when that array cannot be read (then :func:`load_record` says why)."""
    attrs = _zarr_root_attrs(path)
    if not attrs or RECORD_MARKER in attrs or COMPLETE_ATTR not in attrs:
        return False, None
    try:
        if int(attrs[COMPLETE_ATTR]):
            return False, None
    except (TypeError, ValueError):
        return False, None
    import zarr

    try:
        group = zarr.open_group(path, mode="r")
        if "timestep" not in group:  # killed while the store's arrays were being created
            return True, 0
        return True, int(np.isfinite(np.asarray(group["timestep"][...], dtype=np.float64)).sum())
    except Exception:  # noqa: BLE001 - damaged: not for this check to judge
        return True, None


def _no_record(path: str) -> str | None:
    """Why the zarr path ``path`` holds no record to load, and what to do ("it ..."); None when it may hold one."""
    if os.path.isdir(path) and not os.listdir(path):
        return ("it is an empty folder, not a record (a capture streamed there stopped before writing anything, or "
                "the folder was made by hand; the probe creates its store itself). Record to a new path, or remove "
                f"the folder first (os.rmdir({path!r}))")
    if _unfinished_capture(path) == (True, 0):
        return ("it holds no record: a LatentProbe(store=...) capture started there and stopped before it stored its "
                "first step (complete = 0: its process was killed, or it is still running elsewhere), so there is "
                f"nothing to load. Record to a new path, or delete this leftover first (shutil.rmtree({path!r})) and "
                "record to it again")
    return None


def _describe_existing(path: str) -> str:
    """What is at an existing record path and the exact way to proceed ("it ..."), for a capture refused there."""
    empty = _no_record(path)
    if empty is not None:
        return empty
    unfinished, steps = _unfinished_capture(path)
    if unfinished:
        held = f"{steps} stored step(s)" if steps is not None else "stored steps that cannot be read"
        return (f"it holds an unfinished capture (complete = 0) with {held}; load_record({path!r}) reads it. Record to "
                f"a new path, or delete it first if you no longer need it (shutil.rmtree({path!r}))")
    if _is_our_record(_zarr_root_attrs(path)) or _is_our_record(_netcdf_root_attrs(path)):
        return "it holds a freeinit_lab record. Record to a new path, or delete it first if you mean to"
    return "it is not a freeinit_lab record. Record to a new path"


def _check_replaceable(path: str, fmt: Format) -> None:
    """Refuse to replace anything but a record this library wrote."""
    if fmt == "zarr":
        ours = os.path.isdir(path) and _is_our_record(_zarr_root_attrs(path))
        what = "a folder that is not a freeinit_lab zarr record"
    else:
        ours = os.path.isfile(path) and _is_our_record(_netcdf_root_attrs(path))
        what = "a file that is not a readable freeinit_lab NetCDF record"
    if not ours:
        raise FileExistsError(
            f"refusing to overwrite {path!r}: it is {what} (no {RECORD_MARKER!r} attribute), and overwrite=True only "
            "ever replaces a record save_record or LatentProbe(store=...) wrote. Choose another path, or delete it "
            "yourself if you mean to"
        )


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def save_record(
    ds: xr.Dataset | xr.DataArray, path: str | os.PathLike, *, format: Format | None = None, overwrite: bool = False
) -> None:
    """Write a record to NetCDF (``.nc``) or zarr (``.zarr``) so that :func:`load_record` gives it back exactly.

    Parameters
    ----------
    ds
        A record from :meth:`freeinit_lab.LatentProbe.to_xarray` (or any dataset with plain-valued attrs), or a
        DataArray (:func:`load_record` gives back a DataArray of the same name).
    path
        Target file (NetCDF) or directory (zarr). Its folder must exist.
    format
        ``"netcdf"`` or ``"zarr"``; inferred from the suffix when omitted.
    overwrite
        Replace an existing record; without it an existing path raises ``FileExistsError``. Only a record this
        library wrote is ever replaced (see the module docstring); the old one is kept until the new one is
        fully written.

    Notes
    -----
    Writes checksums (NetCDF ``fletcher32``, zarr ``crc32c``), the bookkeeping attributes ``freeinit_lab_record``
    and ``freeinit_lab_variables`` (and for zarr ``freeinit_lab_metadata_sha256``, the digests of its metadata;
    all removed again by :func:`load_record`) and, for records with a ``step`` dim, ``num_steps_stored``.
    """
    ds = _as_dataset(ds)
    path = os.fspath(path)
    fmt = _format_of(path, format)
    _require_backend(fmt, "writing")
    _check_folder(path)
    if fmt == "zarr":  # zarr reads "a/b" as array b of a group a: saved, but no reader would see it
        slashed = [str(n) for n in [*ds.variables, *ds.dims] if "/" in str(n)]
        if slashed:
            raise ValueError(f"cannot save {path!r} as zarr: the names {slashed} hold '/', which zarr reads as a "
                             "group separator; rename them (ds.rename(...))")
    exists = os.path.lexists(path)
    if exists and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it")
    if exists:
        _check_replaceable(path, fmt)
    ds = ds.copy(deep=False)
    for name in ds.variables:
        ds[name].encoding = {}
    steps = _count_steps(ds)
    attrs = {k: v for k, v in ds.attrs.items() if k not in (RECORD_MARKER, _VARIABLES_ATTR, _METADATA_ATTR)}
    if steps is not None:
        attrs[STEPS_ATTR] = steps
    attrs[RECORD_MARKER] = _IO_VERSION
    attrs[_VARIABLES_ATTR] = json.dumps([str(n) for n in ds.variables])  # JSON: names may hold spaces
    ds.attrs = attrs
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.writing-{uuid.uuid4().hex[:8]}")
    try:
        if fmt == "zarr":
            _write_zarr(ds, tmp)
        else:
            _write_netcdf(ds, tmp)
        if exists:
            old = os.path.join(folder, f".{base}.replaced-{uuid.uuid4().hex[:8]}")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            _remove(old)
        else:
            _publish_new(tmp, path)
    finally:
        _remove(tmp)


def _publish_new(tmp: str, path: str) -> None:
    """Move the finished ``tmp`` to ``path`` without replacing a record another writer put there meanwhile.

    A file is hard-linked (which fails if ``path`` exists) rather than renamed (which would silently replace it);
    a directory's rename fails onto a non-empty one. Either way the other writer's record stays and this one is
    refused, as if ``path`` had existed from the start.
    """
    taken = FileExistsError(f"{path!r} was created by another writer while this record was being written; its "
                            "record was kept. Save under another path, or pass overwrite=True to replace it")
    if os.path.isdir(tmp):
        try:
            os.rename(tmp, path)
        except OSError:
            if os.path.lexists(path):
                raise taken from None
            raise
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise taken from None
    except OSError:  # a file system without hard links: rename, having looked first
        if os.path.lexists(path):
            raise taken from None
        os.rename(tmp, path)


def _write_zarr(ds: xr.Dataset, path: str) -> None:
    import zarr
    from zarr.codecs import Crc32cCodec

    encoding = {name: {"compressors": [Crc32cCodec()]} for name in ds.variables}
    ds.to_zarr(path, mode="w-", consolidated=False, zarr_format=3, encoding=encoding, write_empty_chunks=True)
    # the digests of the metadata as written, added last (they cover everything but themselves)
    zarr.open_group(path, mode="r+").attrs.update({_METADATA_ATTR: _zarr_metadata_digests(path)})


def _sha(value: Any) -> str:
    """SHA-256 (first 16 hex digits) of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _zarr_metadata_documents(path: str) -> tuple[dict, dict[str, dict]]:
    """The root group's ``zarr.json`` and each array's (``name -> document``), parsed; records are one group deep."""
    with open(os.path.join(path, "zarr.json"), encoding="utf-8") as f:
        root = json.load(f)
    arrays = {}
    for name in sorted(os.listdir(path)):
        meta = os.path.join(path, name, "zarr.json")
        if os.path.isfile(meta):
            with open(meta, encoding="utf-8") as f:
                arrays[name] = json.load(f)
    return root, arrays


def _metadata_digests(path: str, update: dict[str, Any] | None = None) -> dict[str, Any]:
    """The digests of a zarr record's metadata as it is now (or once its root attributes are updated with
    ``update``): ``attributes`` (one per root attribute but the digest attribute itself), ``group`` (the rest of the
    root ``zarr.json``) and ``arrays`` (one per array's ``zarr.json``).
    """
    root, arrays = _zarr_metadata_documents(path)
    attrs = {k: v for k, v in {**(root.get("attributes") or {}), **(update or {})}.items() if k != _METADATA_ATTR}
    return {
        "attributes": {k: _sha(v) for k, v in attrs.items()},
        "group": _sha({k: v for k, v in root.items() if k != "attributes"}),
        "arrays": {name: _sha(doc) for name, doc in arrays.items()},
    }


def _zarr_metadata_digests(path: str, update: dict[str, Any] | None = None) -> str:
    return json.dumps(_metadata_digests(path, update), sort_keys=True, separators=(",", ":"))


def _write_netcdf(ds: xr.Dataset, path: str) -> None:
    encoding: dict[str, dict] = {}
    for name, var in list(ds.variables.items()):
        if var.dtype == np.float16:
            view = xr.Variable(var.dims, np.asarray(var.values).view(np.uint16), {**var.attrs, _DTYPE_ATTR: "float16"})
            if name in ds.coords:
                ds = ds.assign_coords({name: view})
            else:
                ds[name] = view
            encoding[name] = {"_FillValue": None}
    for name, var in ds.variables.items():
        if var.ndim > 0 and var.dtype.kind in "fiub" and var.size > 0:
            encoding.setdefault(name, {})["fletcher32"] = True
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding, format="NETCDF4")


# ----------------------------------------------------------------------------------------------------------------
# load
# ----------------------------------------------------------------------------------------------------------------
def _require_backend(fmt: Format, doing: str) -> None:
    module, name = _BACKENDS[fmt]
    require(module, f"{doing} a {name} record")


def _damaged(path: str, detail: str, exc: BaseException | None = None) -> DamagedRecordError:
    cause = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return DamagedRecordError(
        f"record {path!r} is damaged: {detail}{cause}. Its values cannot be trusted; restore it from a copy or "
        "record it again"
    )


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _hdf5_end_of_file(path: str) -> int | None:
    """The length an HDF5 (NetCDF-4) file records in its superblock (its end-of-file address), in bytes.

    The superblock starts at byte 0 or after a user block (at 512, 1024, 2048, ...). Its addresses are
    little-endian, ``size of offsets`` bytes each: versions 0 and 1 hold that size at byte 13 and, after 24 bytes of
    header fields (version 1: 28), the base, free-space, end-of-file and driver addresses; versions 2 and 3 hold it
    at byte 9 and, from byte 12, the base, superblock-extension, end-of-file and root-group addresses. The
    end-of-file address counts a user block too (HDF5 compares it with the whole file's length). None when there
    is no HDF5 superblock (a classic NetCDF file), an unknown version, or an undefined end-of-file address.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        at = 0
        while at + 8 <= size:
            f.seek(at)
            if f.read(8) == _HDF5_SIGNATURE:
                break
            at = 512 if at == 0 else 2 * at
        else:
            return None
        head = f.read(64)  # from the version byte on
    if not head:
        return None
    version = head[0]
    if version in (0, 1):
        width, first = (head[5] if len(head) > 5 else 0), 16 if version == 0 else 20
    elif version in (2, 3):
        width, first = head[1], 4
    else:
        return None
    if width not in (2, 4, 8) or len(head) < first + 3 * width:
        return None
    end = int.from_bytes(head[first + 2 * width : first + 3 * width], "little")
    return None if end == (1 << 8 * width) - 1 else end  # all ones: the undefined address


def _check_hdf5_length(path: str) -> None:
    """Raise :class:`DamagedRecordError` when a NetCDF-4 file's length is not the one its HDF5 superblock records.

    HDF5 checks this itself when it opens a file, but not when it reuses a file it holds open already, and
    netCDF-C leaves the HDF5 file open after a failed open: after one refusal of a damaged file, a later open of a
    truncated file at the same path (same inode) in the same process would read its missing bytes as zeros. So the
    length is checked here, from the file itself, before every open.
    """
    end = _hdf5_end_of_file(path)
    size = os.path.getsize(path)
    if end is not None and size != end:
        if size < end:
            raise _damaged(path, f"it is truncated: {size} bytes, but its HDF5 superblock records {end}")
        raise _damaged(path, f"it is {size} bytes long, but its HDF5 superblock records {end} (bytes were appended, "
                             "or it was written over)")


def _has_checksum(arr: Any) -> bool:
    """Whether a zarr array carries the crc32c codec (stores streamed since it was added also keep empty chunks)."""
    return any(type(c).__name__ == "Crc32cCodec" for c in getattr(arr, "compressors", ()) or ())


def _check_zarr_metadata(path: str) -> None:
    """Raise :class:`DamagedRecordError` where a zarr record's metadata differs from the digests it was saved with,
    naming each root attribute or array that differs; a record of io version >= 2 without its digests is damaged
    too, and so is a streamed store marked ``complete = 1`` without them. Records of version 1, and stores still being
    streamed or streamed before digests, carry none and are not checked."""
    attrs = _zarr_root_attrs(path)
    if attrs is None:  # no readable group metadata: opening the store says why
        return
    stored = attrs.get(_METADATA_ATTR)
    if stored is None:
        if attrs.get(STREAM_MARKER) is not None and attrs.get(COMPLETE_ATTR) == 1:
            raise _damaged(path, f"it says its capture finished (complete = 1) but has no metadata digests "
                                 f"({_METADATA_ATTR!r}), which its probe adds when it closes: its metadata was "
                                 "changed, or its process was killed while closing")
        version = attrs.get(RECORD_MARKER)
        if isinstance(version, (int, float)) and not isinstance(version, bool) and version >= 2:
            raise _damaged(path, f"its metadata digests ({_METADATA_ATTR!r}) are missing, though it was saved with "
                                 f"them ({RECORD_MARKER} = {version})")
        if version is not None and not isinstance(version, (int, float)):
            raise _damaged(path, f"its {RECORD_MARKER!r} attribute is {version!r}, not a version number")
        return
    try:
        want = json.loads(stored)
        want_attrs, want_group, want_arrays = want["attributes"], want["group"], want["arrays"]
        if not (isinstance(want_attrs, dict) and isinstance(want_arrays, dict)):
            raise ValueError("not a mapping")
    except (TypeError, ValueError, KeyError) as exc:
        raise _damaged(path, f"its metadata digests ({_METADATA_ATTR!r}) cannot be read", exc) from exc
    got = _metadata_digests(path)
    differs = []

    def compare(what: str, have: dict, expected: dict, missing_too: bool = True) -> None:
        changed = sorted(k for k in expected if k in have and have[k] != expected[k])
        missing = sorted(k for k in expected if k not in have) if missing_too else []
        extra = sorted(k for k in have if k not in expected)
        differs.extend(f"{what} {k!r} changed" for k in changed)
        differs.extend(f"{what} {k!r} missing" for k in missing)
        differs.extend(f"{what} {k!r} not saved with the record" for k in extra)

    compare("root attribute", got["attributes"], want_attrs)
    if got["group"] != want_group:
        differs.append("the group's zarr.json (besides its attributes) changed")
    # a missing array is a missing variable: the structure check names it so (_check_zarr_structure)
    compare("array metadata (zarr.json) of", got["arrays"], want_arrays, missing_too=False)
    if differs:
        raise _damaged(path, "its metadata differs from what was saved: " + "; ".join(differs))


def _listed_variables(value: Any) -> list[str]:
    """The variable names a record lists: a JSON list, or (records saved before names could hold spaces) words."""
    text = str(value)
    if text.startswith("["):
        try:
            names = json.loads(text)
        except ValueError:
            names = None
        if isinstance(names, list):
            return [str(n) for n in names]
    return text.split()


def _check_zarr_structure(path: str, ds: xr.Dataset, ours: bool, streamed: bool) -> None:
    """Every listed variable present; every chunk of a saved record stored; streamed steps have their chunks."""
    import zarr

    group = zarr.open_group(path, mode="r")
    if ours:
        listed = _listed_variables(ds.attrs.get(_VARIABLES_ATTR, ""))
        missing = [n for n in listed if n not in ds.variables]
        if missing:
            raise _damaged(path, f"variables {missing} are missing from the store")
        for name, arr in group.arrays():
            if arr.nchunks_initialized < arr.nchunks:
                raise _damaged(
                    path, f"{arr.nchunks - arr.nchunks_initialized} of the {arr.nchunks} chunks of {name!r} are missing"
                )
    elif streamed and "timestep" in group:
        from freeinit_lab.probes.probe import CAPTURE_SITES

        expected = int(np.isfinite(np.asarray(group["timestep"][...], dtype=np.float64)).sum())
        for name in CAPTURE_SITES:
            if name in group and group[name].nchunks_initialized < expected:
                gap = expected - group[name].nchunks_initialized
                if _has_checksum(group[name]):  # written with every chunk stored: a missing one was lost
                    raise _damaged(path, f"{gap} recorded step(s) of {name!r} have no stored chunk")
                warnings.warn(
                    f"record {path!r}: {gap} recorded step(s) of {name!r} have no stored chunk and read as NaN: "
                    "deleted from the store, or the step was entirely NaN (a diverged sampler). Stores streamed "
                    "by the probe carry no checksums; save_record(load_record(path), 'copy.zarr') writes one that "
                    "does",
                    IncompleteRecordWarning,
                    stacklevel=3,
                )


def load_record(
    path: str | os.PathLike, *, format: Format | None = None, lazy: bool = False
) -> xr.Dataset | xr.DataArray:
    """Read a record written by :func:`save_record` (or streamed by ``LatentProbe(store=...)``).

    Parameters
    ----------
    path
        A ``.nc`` file or a ``.zarr`` store.
    format
        ``"netcdf"`` or ``"zarr"``; inferred from the suffix when omitted.
    lazy
        Keep the data on disk until used (zarr and NetCDF both index lazily); default loads it into memory.
        With ``lazy=True`` the checksums are verified when the data is read (the storage library raises then).

    Returns
    -------
    xarray.Dataset
        The record (a DataArray if a DataArray was saved). A streamed store with ``every > 1`` holds only the kept
        steps, as :meth:`LatentProbe.to_xarray` does.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    DamagedRecordError
        A checksum fails, the file is truncated, an array or chunk is missing, or a zarr record's metadata differs
        from the digests it was saved with; the message names the file (and what differs).
    EmptyRecordError
        ``path`` holds no record: a streamed capture that stopped before storing its first step (its leftover may
        be deleted, or replaced with ``save_record(..., overwrite=True)``), or an empty folder.
    ImportError
        The format's library (``netCDF4`` or ``zarr``, the ``storage`` extra) is not installed.

    Warns
    -----
    IncompleteRecordWarning
        The record is marked ``complete = 0`` (the capture stopped early; ``num_steps_stored`` says how far it got).
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"no record at {path!r}")
    fmt = _format_of(path, format)
    _require_backend(fmt, "reading")  # a missing library is not a damaged record
    empty = _no_record(path) if fmt == "zarr" else None
    if empty is not None:
        raise EmptyRecordError(f"cannot load {path!r}: {empty}")
    try:
        ds = _read(path, fmt, lazy)
    except (DamagedRecordError, FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001 - HDF/zarr/JSON errors of a damaged store all mean the same
        raise _damaged(path, "it cannot be read (a checksum failed, or the file is truncated or not a record)", exc) \
            from exc
    stored = ds.attrs.get(STEPS_ATTR)
    incomplete = ds.attrs.get(COMPLETE_ATTR) is not None and not int(ds.attrs[COMPLETE_ATTR])
    counted = _count_steps(ds) if not lazy else None
    if stored is not None and counted is not None:
        # a streamed capture that stopped mid-call wrote steps after its last count (each with its chunks: checked)
        late = incomplete and RECORD_MARKER not in ds.attrs and counted > int(stored)
        if counted != int(stored) and not late:
            raise _damaged(path, f"it holds {counted} steps but was written with {int(stored)}")
    if incomplete:
        # a streamed capture killed before its first sync has no count yet: the steps on disk are what it stored
        n = counted if counted is not None and RECORD_MARKER not in ds.attrs else stored
        warnings.warn(
            f"record {path!r} is incomplete: the capture stopped before it finished (complete = 0, "
            f"{'unknown' if n is None else int(n)} steps stored); missing steps are NaN",
            IncompleteRecordWarning,
            stacklevel=2,
        )
    name = ds.attrs.get(_DATAARRAY_ATTR)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in _INTERNAL_ATTRS}
    if name is not None:
        da = ds[name]
        da.attrs = dict(ds.attrs)
        return da.rename(None) if name == _UNNAMED else da
    return ds


def _open_to_shortest(path: str) -> xr.Dataset:
    """An unfinished streamed store whose arrays disagree in length, each read up to the shortest extent of its dims.

    The probe grows its arrays one after the other before it writes a step, and a step's timestep last, so a kill
    between two resizes leaves some arrays a row longer than others: rows beyond the shortest hold no stored step.
    """
    import zarr

    group = zarr.open_group(path, mode="r")
    names = [name for name, _ in group.arrays()]
    extent: dict[str, int] = {}
    for _, arr in group.arrays():
        for dim, size in zip(arr.metadata.dimension_names or (), arr.shape):
            extent[dim] = min(extent.get(dim, size), size)
    parts = []
    for name in names:
        part = xr.open_zarr(path, consolidated=False, chunks=None, drop_variables=[n for n in names if n != name])
        parts.append(part.isel({d: slice(0, extent[d]) for d in part.dims if d in extent}))
    return xr.merge(parts, compat="override", join="exact", combine_attrs="override")


def _read(path: str, fmt: Format, lazy: bool) -> xr.Dataset:
    if fmt == "zarr":
        _check_zarr_metadata(path)
        try:
            ds = xr.open_zarr(path, consolidated=False, chunks=None)
        except ValueError:  # arrays of different lengths: a streamed capture killed while it grew them
            if not _unfinished_capture(path)[0]:
                raise
            ds = _open_to_shortest(path)
        ours = RECORD_MARKER in ds.attrs
        # a store streamed by LatentProbe(store=...): the step axis holds stored steps in arrival order (older
        # stores: one row per step index, NaN rows for skipped steps)
        streamed = not ours and "timestep" in ds.variables and ds["timestep"].dims == ("iteration", "step")
        _check_zarr_structure(path, ds, ours, streamed)
        if streamed:  # mark its coords, keep only the steps it recorded
            from freeinit_lab.probes.record import CAPTURE_SITES

            if "timestep" not in ds.coords:  # its metadata was not written yet (a capture still running)
                ds = ds.set_coords([n for n in ds.data_vars if n not in CAPTURE_SITES])
            if "step" in ds.dims and ds.sizes["step"]:
                kept = np.flatnonzero(np.isfinite(np.asarray(ds["timestep"].values, dtype=np.float64)).any(axis=0))
                ds = ds.isel(step=kept).sortby("step")
        return ds if lazy else ds.load()
    with _netcdf_open(path, lazy=lazy) as target:
        ds = xr.open_dataset(target, engine="netcdf4")
        if not lazy:
            with ds:
                ds = ds.load()
    for name, var in ds.variables.items():
        if var.attrs.get(_DTYPE_ATTR) == "float16":
            attrs = {k: v for k, v in var.attrs.items() if k != _DTYPE_ATTR}
            fixed = xr.Variable(var.dims, np.asarray(var.values).view(np.float16), attrs)
            ds = ds.assign_coords({name: fixed}) if name in ds.coords else ds.assign({name: fixed})
    return ds if lazy else ds.load()
