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

__all__ = ["record", "save_figure", "render_figures", "RECORDS", "REPORT_DIR_ENV", "NOTEBOOK_ENV", "FIGURE_DIR_ENV"]

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
                         f"{stem}.html, and make reproduce {stem}.png)")


#: suffix of the figure specs :func:`save_figure` leaves for :func:`render_figures`
PENDING_SUFFIX = ".figure.json"


def save_figure(fig, name: str, *, width: int = 900, height: int = 420):
    """Save a key figure for the README when ``make reproduce`` runs (``FREEINIT_LAB_FIGURE_DIR`` set); return it.

    Writes ``<dir>/<name>.html`` and ``<dir>/<name>.figure.json`` (the figure and its PNG size), from which
    :func:`render_figures` draws ``<dir>/<name>.png`` once every notebook has run: one Chromium session for all
    figures instead of one per figure (``make reproduce`` calls it; kaleido's one-shot export started a browser
    for each PNG, about 2.5 s, where a figure in a running session takes about 0.25 s). Outside ``make reproduce``
    it does nothing but return the figure, so a notebook cell can end with ``save_figure(fig, "name")`` and still
    display it. ``name`` is a plain file name without extension (letters, digits, ``_``, ``-``, ``.``, spaces);
    anything else, a path or ``.png``/``.html`` included, is refused in every run, so a name that would fail or
    write elsewhere under ``make reproduce`` fails at once.
    """
    _check_figure_name(name)
    for what, size in (("width", width), ("height", height)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"save_figure {what}={size!r}: a positive whole number of pixels is needed")
    out_dir = os.environ.get(FIGURE_DIR_ENV)
    if out_dir:
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        fig.write_html(path / f"{name}.html", include_plotlyjs="cdn")
        spec = f'{{"width": {width}, "height": {height}, "figure": {fig.to_json()}}}'
        (path / f"{name}{PENDING_SUFFIX}").write_text(spec)
    return fig


def render_figures(folder: str | Path, *, keep_specs: bool = False) -> list[Path]:
    """Draw ``<name>.png`` for every ``<name>.figure.json`` :func:`save_figure` left in ``folder``; return the PNGs.

    All figures go through one kaleido session (``plotly.io.write_images``), at the size each was saved with. The
    specs are removed once their PNGs are written (``keep_specs=True`` keeps them). Without kaleido or a Chromium
    (set ``BROWSER_PATH``), nothing is drawn: the reason is printed, the specs stay for a later call, and the
    result is empty.
    """
    folder = Path(folder)
    specs = sorted(folder.glob(f"*{PENDING_SUFFIX}"))
    if not specs:
        return []
    import plotly.io as pio

    loaded = [json.loads(p.read_text()) for p in specs]
    pngs = [folder / (p.name[: -len(PENDING_SUFFIX)] + ".png") for p in specs]
    try:
        pio.write_images([d["figure"] for d in loaded], pngs,  # figure dicts, validated by plotly
                         width=[d["width"] for d in loaded], height=[d["height"] for d in loaded])
    except Exception as exc:  # kaleido or its browser missing: the HTML files are there, the specs stay
        print(f"render_figures: {len(specs)} PNG(s) in {folder} skipped ({type(exc).__name__}: {exc}); install "
              "kaleido and Chromium (or set BROWSER_PATH) and call render_figures again")
        return []
    if not keep_specs:
        for p in specs:
            p.unlink()
    return pngs
