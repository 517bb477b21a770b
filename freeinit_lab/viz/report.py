"""Key numbers of a notebook run, recorded for ``make reproduce``'s summary table.

A notebook calls ``record("name", value, "what it means")`` next to the assertion that checks the value. When the
environment variable ``FREEINIT_LAB_REPORT_DIR`` is set (``make reproduce`` sets it), every record is also
appended to ``<dir>/<notebook>.json``; otherwise it is only kept in memory (:data:`RECORDS`).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

__all__ = ["record", "save_figure", "RECORDS", "REPORT_DIR_ENV", "NOTEBOOK_ENV", "FIGURE_DIR_ENV"]

REPORT_DIR_ENV = "FREEINIT_LAB_REPORT_DIR"
NOTEBOOK_ENV = "FREEINIT_LAB_NOTEBOOK"
RECORDS: dict[str, dict] = {}


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def record(name: str, value, description: str = "", notebook: str | None = None, *, low=None, high=None):
    """Record a key number and return it unchanged (so ``x = record("x", compute())`` reads naturally).

    ``low``/``high``: its interval's ends, when it has one (both or neither); the README's key figures quote them
    (``make reproduce`` exposes them as ``<name>_low`` and ``<name>_high``)."""
    if (low is None) != (high is None):
        raise ValueError(f"record({name!r}): give both ends of the interval (low= and high=) or neither")
    if low is not None and not float(low) <= float(high):
        raise ValueError(f"record({name!r}): low={low} is above high={high}")
    notebook = notebook or os.environ.get(NOTEBOOK_ENV, "session")
    entry = {"notebook": notebook, "name": name, "value": _plain(value), "description": description}
    if low is not None:
        entry.update(low=_plain(low), high=_plain(high))
    RECORDS[f"{notebook}/{name}"] = entry
    out_dir = os.environ.get(REPORT_DIR_ENV)
    if out_dir:
        path = Path(out_dir) / f"{notebook}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing[name] = entry
        path.write_text(json.dumps(existing, indent=1))
    return value


FIGURE_DIR_ENV = "FREEINIT_LAB_FIGURE_DIR"
_FIGURE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]*")


def _check_figure_name(name) -> None:
    if not isinstance(name, str) or not _FIGURE_NAME.fullmatch(name) or name.endswith((".", " ")):
        raise ValueError(f"save_figure name {name!r}: a plain file name is needed (letters, digits, '_', '-', '.', "
                         "spaces; no folder, no leading '.'), e.g. '04_cutoff_map'; the folder is "
                         f"${FIGURE_DIR_ENV}")
    if name.lower().endswith((".png", ".html")):
        stem = name.rsplit(".", 1)[0]
        raise ValueError(f"save_figure name {name!r}: leave the extension out (save_figure({stem!r}) writes "
                         f"{stem}.png and {stem}.html)")


def save_figure(fig, name: str, *, width: int = 900, height: int = 420):
    """Save a key figure for the README when ``make reproduce`` runs (``FREEINIT_LAB_FIGURE_DIR`` set); return it.

    Writes ``<dir>/<name>.png`` through kaleido (needs a Chromium: set ``BROWSER_PATH`` if it is not found), and
    ``<dir>/<name>.html`` always. Outside ``make reproduce`` it does nothing but return the figure, so a notebook
    cell can end with ``save_figure(fig, "name")`` and still display it. ``name`` is a plain file name without
    extension (letters, digits, ``_``, ``-``, ``.``, spaces); anything else, a path or ``.png``/``.html`` included,
    is refused in every run, so a name that would fail or write elsewhere under ``make reproduce`` fails at once.
    """
    _check_figure_name(name)
    out_dir = os.environ.get(FIGURE_DIR_ENV)
    if out_dir:
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        fig.write_html(path / f"{name}.html", include_plotlyjs="cdn")
        try:
            fig.write_image(path / f"{name}.png", width=width, height=height)
        except Exception as exc:  # kaleido or its browser missing: the HTML is still there
            print(f"save_figure: PNG of {name!r} skipped ({type(exc).__name__}: {exc}); install kaleido and Chromium")
    return fig
