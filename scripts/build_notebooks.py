"""Build the committed notebooks from their percent-format sources in ``notebooks/src/``.

The ``.py`` sources are what we edit and review (plain text, diff-friendly); the ``.ipynb`` files beside them are
generated, carry no outputs, and are what nbval, papermill and JupyterLab run. ``tests/test_notebook_sources.py``
fails when the two drift apart.

Cell markers: ``# %%`` code, ``# %% [markdown]`` markdown (lines prefixed by ``# ``),
``# %% tags=["parameters"]`` a tagged code cell.

Usage::

    python scripts/build_notebooks.py            # rebuild every notebook
    python scripts/build_notebooks.py 03         # rebuild the ones whose name starts with 03
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "src"
OUT = ROOT / "notebooks"


def build(src: Path) -> nbformat.NotebookNode:
    """Parse one percent-format source into a notebook without outputs (stable cell ids)."""
    parts = re.split(r"^# %%(.*)$", src.read_text(), flags=re.M)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for header, body in zip(parts[1::2], parts[2::2]):
        body = body.strip("\n")
        if "[markdown]" in header:
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines()]
            nb.cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        else:
            cell = nbformat.v4.new_code_cell(body)
            tags = re.search(r"tags=\[(.*?)\]", header)
            if tags:
                cell.metadata["tags"] = [t.strip().strip("\"'") for t in tags.group(1).split(",")]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


def main(prefixes: list[str]) -> int:
    """Build the notebooks whose names start with one of ``prefixes`` (all without any); exit status 2, building
    nothing, when a prefix matches no source (a typo built nothing and reported success)."""
    if any(p in ("-h", "--help") for p in prefixes):
        print(__doc__)
        return 0
    sources = sorted(SRC.glob("*.py"))
    unmatched = [p for p in prefixes if not any(src.stem.startswith(p) for src in sources)]
    if unmatched:
        print(f"no notebook source in notebooks/src/ starts with {', '.join(map(repr, unmatched))}; sources: "
              f"{', '.join(src.stem for src in sources)}", file=sys.stderr)
        return 2
    for src in sources:
        if prefixes and not any(src.stem.startswith(p) for p in prefixes):
            continue
        nbformat.write(build(src), OUT / f"{src.stem}.ipynb")
        print(f"built notebooks/{src.stem}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
