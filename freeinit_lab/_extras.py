"""Optional dependencies: import one, or say which extra of ``pyproject.toml`` installs it.

A feature that needs an optional library calls :func:`require` before it starts work, so a missing library is
reported as such (with the ``pip install`` line) instead of surfacing as a bare ``ModuleNotFoundError`` mid-run,
or as a damaged file when a storage back end is what is missing.

>>> require("zarr", "writing a zarr store").__name__  # doctest: +SKIP
'zarr'
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "require"]

#: ``{import name: extra}``: the optional libraries the package imports, and the extra that installs each
#: (``tests/test_packaging.py`` checks that every one is a requirement of that extra in ``pyproject.toml``).
EXTRAS: dict[str, str] = {
    "zarr": "storage",
    "netCDF4": "storage",
    "dask": "scale",
    "distributed": "scale",
    "yaml": "scale",
    "ipywidgets": "notebooks",
}


def require(module: str, what: str) -> ModuleType:
    """Import ``module``, or raise an ImportError naming the extra that installs it.

    Parameters
    ----------
    module
        The import name, a key of :data:`EXTRAS` (e.g. ``"zarr"``).
    what
        What needs it, for the message: ``"reading a NetCDF record"``.

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    ImportError
        ``"<what> needs <module>, which is not installed: pip install 'freeinit_lab[<extra>]'"``, chained to
        the original error.
    """
    extra = EXTRAS[module]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs {module}, which is not installed: pip install 'freeinit_lab[{extra}]'"
                          f" ({type(err).__name__}: {err})") from err
