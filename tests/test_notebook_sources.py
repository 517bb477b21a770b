"""The committed notebooks are exactly their sources in notebooks/src, without outputs, each with one parameters cell."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks" / "src").glob("*.py"))

_spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
build_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_notebooks)


def test_every_notebook_has_a_source():
    built = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert built == {p.stem for p in SOURCES}, "run `python scripts/build_notebooks.py` (and add the source)"


@pytest.mark.parametrize("src", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_matches_source(src):
    committed = nbformat.read(ROOT / "notebooks" / f"{src.stem}.ipynb", as_version=4)
    fresh = build_notebooks.build(src)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in fresh.cells], (
        f"notebooks/{src.stem}.ipynb is out of date: run `python scripts/build_notebooks.py {src.stem[:2]}`")
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code"), "strip outputs"
    tagged = [c for c in committed.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"


def test_build_refuses_a_prefix_that_matches_no_source(capsys):
    """`build_notebooks.py 7` (a typo) built nothing and exited 0; it now exits 2 naming the sources, having
    written nothing, and --help prints the usage instead of building every notebook."""
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert build_notebooks.main(["03", "7"]) == 2
    assert "'7'" in capsys.readouterr().err
    assert build_notebooks.main(["--help"]) == 0
    assert "Usage" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "notebooks").glob("*.ipynb")} == before
