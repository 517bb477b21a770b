"""Where the embedded default's files live: inside the installed package, or in the checkout's ``data/``.

A wheel carries ``data/`` as ``freeinit_lab/embedded/_data`` (copied at build time, see ``setup.py``); an
editable install or a plain checkout reads the top-level ``data/`` folder of the repository.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "data_dir"]


def data_dir() -> Path:
    """The folder holding ``default_model/``, ``clips/`` and ``cutoff_map.nc``.

    Returns the copy inside the installed package when there is one, else ``<checkout>/data``.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "_data"
    if packaged.is_dir():
        return packaged
    return here.parents[1] / "data"


#: The embedded default's folder, resolved once at import (see :func:`data_dir`).
DATA_DIR = data_dir()
