"""Save and load probe records (``xarray.Dataset``) to NetCDF or zarr, bit-identically.

NetCDF has no half-precision type, so float16 variables (``LatentProbe(dtype=torch.float16)``) are written as
their raw 16-bit patterns (``uint16``) with the attribute ``freeinit_lab_dtype = "float16"`` and viewed back as
float16 on load: every bit, NaN padding included, survives. zarr stores float16 natively.

>>> save_record(ds, "run.nc"); ds2 = load_record("run.nc")  # doctest: +SKIP
>>> save_record(ds, "run.zarr"); ds3 = load_record("run.zarr")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import xarray as xr

__all__ = ["save_record", "load_record"]

_DTYPE_ATTR = "freeinit_lab_dtype"
Format = Literal["netcdf", "zarr"]


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


def save_record(ds: xr.Dataset, path: str | os.PathLike, *, format: Format | None = None, overwrite: bool = False) -> None:
    """Write a record to NetCDF (``.nc``) or zarr (``.zarr``) so that :func:`load_record` gives it back exactly.

    Parameters
    ----------
    ds
        A record from :meth:`freeinit_lab.LatentProbe.to_xarray` (or any dataset with plain-valued attrs).
    path
        Target file (NetCDF) or directory (zarr).
    format
        ``"netcdf"`` or ``"zarr"``; inferred from the suffix when omitted.
    overwrite
        Replace an existing file or store; without it an existing path raises ``FileExistsError``.
    """
    path = os.fspath(path)
    fmt = _format_of(path, format)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it")
    ds = ds.copy(deep=False)
    for name in ds.variables:
        ds[name].encoding = {}
    if fmt == "zarr":
        ds.to_zarr(path, mode="w", consolidated=False, zarr_format=3)
        return
    encoding = {}
    for name, var in ds.variables.items():
        if var.dtype == np.float16:
            view = xr.Variable(var.dims, np.asarray(var.values).view(np.uint16), {**var.attrs, _DTYPE_ATTR: "float16"})
            if name in ds.coords:
                ds = ds.assign_coords({name: view})
            else:
                ds[name] = view
            encoding[name] = {"_FillValue": None}
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)


def load_record(path: str | os.PathLike, *, format: Format | None = None, lazy: bool = False) -> xr.Dataset:
    """Read a record written by :func:`save_record` (or streamed by ``LatentProbe(store=...)``).

    Parameters
    ----------
    path
        A ``.nc`` file or a ``.zarr`` store.
    format
        ``"netcdf"`` or ``"zarr"``; inferred from the suffix when omitted.
    lazy
        Keep the data on disk until used (zarr and NetCDF both index lazily); default loads it into memory.

    Returns
    -------
    xarray.Dataset
    """
    path = os.fspath(path)
    fmt = _format_of(path, format)
    if fmt == "zarr":
        ds = xr.open_zarr(path, consolidated=False, chunks=None)
        if "timestep" in ds.variables and "timestep" not in ds.coords:  # a streamed store: mark its coords
            from freeinit_lab.probes.probe import CAPTURE_SITES

            ds = ds.set_coords([n for n in ds.data_vars if n not in CAPTURE_SITES])
    else:
        ds = xr.open_dataset(path, engine="netcdf4")
        if not lazy:
            with ds:
                ds = ds.load()
        for name, var in ds.variables.items():
            if var.attrs.get(_DTYPE_ATTR) == "float16":
                attrs = {k: v for k, v in var.attrs.items() if k != _DTYPE_ATTR}
                fixed = xr.Variable(var.dims, np.asarray(var.values).view(np.float16), attrs)
                ds = ds.assign_coords({name: fixed}) if name in ds.coords else ds.assign({name: fixed})
    return ds if lazy else ds.load()
