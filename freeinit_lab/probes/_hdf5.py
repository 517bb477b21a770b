"""What the HDF5 library under netCDF4 holds open in this process, so a NetCDF record is never read through a stale
handle.

HDF5 opens a file only once per process: a second open of the same file (same device and inode) reuses the first
one's state, metadata cache included, and skips the checks of a fresh open. Two ways that returns the wrong record:

- netCDF-C leaves the HDF5 file open when an open fails (a damaged header, say): after the damaged file is put
  right *in place* (``cp backup.nc run.nc`` keeps the inode), later loads mix the cached metadata of what was there
  before with the new data (measured: attributes of one record beside the values of another);
- a record held open lazily (``load_record(path, lazy=True)``) keeps its file open: rewritten in place by another
  program, the file loads as the record it was, not the one it is.

:func:`open_file_ids` lists the files HDF5 holds, through ``ctypes`` on the HDF5 library this process has loaded
(found in ``/proc/self/maps``, beside netCDF4's wheel, or by ``ctypes.util.find_library``). Where it cannot be
found, every function here says so (``None``) and the caller falls back on what it saw itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os

__all__ = ["library", "open_file_ids", "held_files", "close_files"]

_OBJ_ALL = 0x1F  # H5F_OBJ_ALL: every file's objects
_OBJ_FILE = 0x01  # H5F_OBJ_FILE


def _candidates() -> list[str]:
    found = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1] if "/" in line else ""
                name = os.path.basename(path)
                if name.startswith("libhdf5") and not name.startswith("libhdf5_hl") and path not in found:
                    found.append(path)
    except OSError:
        pass
    try:
        import netCDF4

        site = os.path.dirname(os.path.dirname(netCDF4.__file__))
        found += sorted(glob.glob(os.path.join(site, "netcdf4.libs", "libhdf5-*")))
        found += sorted(glob.glob(os.path.join(site, "netCDF4", ".dylibs", "libhdf5*")))
    except ImportError:
        pass
    name = ctypes.util.find_library("hdf5")
    if name:
        found.append(name)
    return found


@functools.lru_cache(maxsize=1)
def library():
    """The HDF5 library netCDF4 uses in this process (a ``ctypes.CDLL``), or None where it cannot be found."""
    try:
        import netCDF4  # noqa: F401 - loads the library, so /proc/self/maps lists it
    except ImportError:
        return None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.H5Fget_obj_count.restype = ctypes.c_ssize_t
            lib.H5Fget_obj_count.argtypes = [ctypes.c_int64, ctypes.c_uint]
            lib.H5Fget_obj_ids.restype = ctypes.c_ssize_t
            lib.H5Fget_obj_ids.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_int64)]
            lib.H5Fget_name.restype = ctypes.c_ssize_t
            lib.H5Fget_name.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.c_size_t]
            lib.H5Fclose.restype = ctypes.c_int
            lib.H5Fclose.argtypes = [ctypes.c_int64]
        except (OSError, AttributeError):
            continue
        return lib
    return None


def open_file_ids() -> dict[int, str] | None:
    """``{file id: file name}`` of every file HDF5 holds open in this process; None without the library."""
    lib = library()
    if lib is None:
        return None
    n = lib.H5Fget_obj_count(_OBJ_ALL, _OBJ_FILE)
    if n <= 0:
        return {}
    ids = (ctypes.c_int64 * n)()
    n = lib.H5Fget_obj_ids(_OBJ_ALL, _OBJ_FILE, n, ids)
    out = {}
    for fid in list(ids)[: max(n, 0)]:
        size = lib.H5Fget_name(fid, None, 0)
        buf = ctypes.create_string_buffer(max(size, 0) + 1)
        lib.H5Fget_name(fid, buf, len(buf))
        out[int(fid)] = os.fsdecode(buf.value)
    return out


def _same_file(name: str, st: os.stat_result) -> bool:
    try:
        other = os.stat(name)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def held_files(path: str, ids: dict[int, str] | None = None) -> list[int] | None:
    """The ids of the open HDF5 files that are ``path`` (same device and inode, whatever name it was opened by);
    None without the library."""
    ids = open_file_ids() if ids is None else ids
    if ids is None:
        return None
    st = os.stat(path)
    return [fid for fid, name in ids.items() if _same_file(name, st)]


def close_files(ids: list[int]) -> None:
    """Close HDF5 file ids (ones netCDF-C left open after a failed open)."""
    lib = library()
    for fid in ids:
        lib.H5Fclose(fid)
