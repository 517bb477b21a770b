"""Parameter values a notebook cannot use are refused by name in its first code cell, before any sampling."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
build_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_notebooks)


def _run_first_cells(stem: str, overrides: str, num_code_cells: int = 2) -> dict:
    """Execute the parameters cell (with ``overrides`` appended) and the code cells after it."""
    nb = build_notebooks.build(ROOT / "notebooks" / "src" / f"{stem}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    start = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    ns: dict = {"display": lambda *a, **k: None}
    exec(code[start].source + "\n" + overrides, ns)
    for cell in code[start + 1:start + num_code_cells]:
        exec(cell.source, ns)
    return ns


@pytest.mark.parametrize("value", [1, 13, -1])
def test_cutoff_explorer_refuses_live_videos_it_cannot_check(value):
    """LIVE_VIDEOS=1 reached measure_cutoff_map's 'num_videos=1 must be >= 2' after the live FreeInit run, and more
    than the map's 12 videos numpy's 'high <= 0'."""
    with pytest.raises(ValueError, match="LIVE_VIDEOS"):
        _run_first_cells("04_cutoff_explorer", f"LIVE_VIDEOS = {value}")


def test_cutoff_explorer_refuses_a_live_cell_off_the_map():
    with pytest.raises(ValueError, match="LIVE_CELL"):
        _run_first_cells("04_cutoff_explorer", "LIVE_CELL = (0.3, 0.8)")


@pytest.mark.parametrize("value", [0, 2, 12])
def test_cutoff_explorer_accepts_live_videos_in_range(value):
    ns = _run_first_cells("04_cutoff_explorer", f"LIVE_VIDEOS = {value}")
    assert ns["LIVE_VIDEOS"] == value


def test_freeinit_refinement_refuses_too_few_passes_for_its_claims():
    """With NUM_ITERS = 2 the claim 'the first iteration gains more than each later one' was np.all of nothing:
    it passed without testing anything."""
    with pytest.raises(ValueError, match="NUM_ITERS = 2"):
        _run_first_cells("03_freeinit_refinement", "NUM_ITERS = 2")


@pytest.mark.parametrize("value", [1, 6])
def test_freeinit_refinement_refuses_legacy_passes_out_of_range(value):
    """LEGACY_PASSES = 1 would give the legacy filter no iteration to compare; more than NUM_ITERS passes than
    FreeInit runs, which decompose_freeinit refuses only after the pipeline and the reference videos are loaded."""
    with pytest.raises(ValueError, match=f"LEGACY_PASSES = {value}"):
        _run_first_cells("03_freeinit_refinement", f"LEGACY_PASSES = {value}")
