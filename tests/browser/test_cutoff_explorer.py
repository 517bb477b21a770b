"""The cutoff explorer (notebooks/04_cutoff_explorer.ipynb) in a real JupyterLab in headless Chromium.

Used the way a person uses it: open the notebook, Run > Run All Cells, wait for the widgets and the plotly figures
to render, move the ``d_s`` slider with the keyboard, switch the filter method in the dropdown. After each step
the test reads what the page shows and checks it against ``freeinit_lab`` computed here, outside the kernel:

* the summary's numbers (kept bins, mean H, lowest band variance of the mix) are those of the mask for the
  settings the summary names, and they changed;
* the mask figure's heat-map data in the browser (plotly's ``gd.data``) is that mask's three central slices, its
  title names the settings, and its rendered images were redrawn;
* the band composition bars are that mask's composition;
* no cell wrote a traceback and no widget failed to render.

The parts of the explorer are found by the CSS classes ``CutoffExplorer.DOM_CLASSES`` gives them. Screenshots of
each state go to reports/browser/. Run alone with ``python -m pytest -m browser tests/browser``; the server,
browser, isolation, teardown and time budget are in tests/browser/conftest.py.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
EXPLORER_NOTEBOOK = REPO / "notebooks" / "04_cutoff_explorer.ipynb"

UI_TIMEOUT_S = 30.0  # one kernel round trip per change; generous for 2 busy cores

SUMMARY_RE = re.compile(
    r"(?P<method>\w+)\s+d_s=(?P<d_s>[\d.]+)\s+d_t=(?P<d_t>[\d.]+).*?"
    r"kept bins:\s*(?P<kept>[\d.]+)\s*%.*?mean H:\s*(?P<mean>[\d.]+).*?"
    r"lowest band variance of the mix:\s*(?P<min_var>[\d.]+).*?"
    r"latent grid:\s*(?P<grid>\d+\s*×\s*\d+\s*×\s*\d+)",
    re.S,
)


def _css(name: str) -> str:
    """Selector of the explorer part ``name`` (an attribute of CutoffExplorer), by the class the widget gives it."""
    from freeinit_lab.widgets import CutoffExplorer

    return "." + CutoffExplorer.DOM_CLASSES[name]


@dataclass(frozen=True)
class ExplorerState:
    """What the page shows: the summary (settings and numbers), the d_s and order readouts, the mask figure
    (title, heat-map data, rendered images) and the band figure's bar heights."""

    method: str
    d_s: float
    d_t: float
    order: int
    kept: float
    mean_h: float
    min_var: float
    grid: tuple[int, int, int]
    d_s_readout: str
    title: str
    mask_z: tuple[np.ndarray, ...] = field(repr=False)
    images: tuple[str, ...] = field(repr=False)
    bars: tuple[np.ndarray, ...] = field(repr=False)

    def numbers(self) -> tuple[float, float, float]:
        return self.kept, self.mean_h, self.min_var


# -- reading the page ------------------------------------------------------------------------------------------------
def _read_state(explorer) -> ExplorerState:
    # the DOM text, not the rendered text: JupyterLab skips rendering what lies outside the viewport (its innerText
    # reads empty there), and the explorer is taller than the window
    summary = explorer.locator(_css("summary")).text_content() or ""
    m = SUMMARY_RE.search(summary)
    assert m, f"the summary does not show the settings and numbers it should: {summary!r}"
    mask_plot = explorer.locator(_css("mask_figure"))
    figure = mask_plot.evaluate(
        """gd => ({
            title: (gd.querySelector('.gtitle') || {}).textContent || '',
            z: gd.data.filter(t => t.type === 'heatmap').map(t => Array.from(t.z, row => Array.from(row))),
            images: Array.from(gd.querySelectorAll('.hm image'), i => i.getAttribute('href') || i.getAttribute('xlink:href') || ''),
        })"""
    )
    bars = explorer.locator(_css("band_figure")).evaluate(
        "gd => gd.data.filter(t => t.type === 'bar').map(t => Array.from(t.y))"
    )
    return ExplorerState(
        method=m["method"], d_s=float(m["d_s"]), d_t=float(m["d_t"]),
        order=int(explorer.locator(f"{_css('order')} .widget-readout").text_content() or ""),
        kept=float(m["kept"]), mean_h=float(m["mean"]), min_var=float(m["min_var"]),
        grid=tuple(int(v) for v in re.findall(r"\d+", m["grid"])),  # type: ignore[arg-type]
        d_s_readout=(explorer.locator(f"{_css('d_s')} .widget-readout").text_content() or "").strip(),
        title=figure["title"],
        mask_z=tuple(np.asarray(z, dtype=float) for z in figure["z"]),
        images=tuple(figure["images"]),
        bars=tuple(np.asarray(y, dtype=float) for y in bars),
    )


def _assert_page_shows_its_mask(state: ExplorerState) -> None:
    """Everything the page shows belongs to the mask of the settings the summary names (computed here)."""
    from freeinit_lab.plots import mask_slices
    from freeinit_lab.snr import reinit_band_composition
    from freeinit_lab.spectral import lowpass_filter

    mask = lowpass_filter(state.grid, method=state.method, d_s=state.d_s, d_t=state.d_t, order=state.order)
    kept, mean_h = float((mask >= 0.5).double().mean()) * 100, float(mask.double().mean())
    composition = reinit_band_composition(mask, len(state.bars[0]) if state.bars else 6)
    assert state.kept == pytest.approx(kept, abs=0.0051), ("kept bins", state, kept)
    assert state.mean_h == pytest.approx(mean_h, abs=0.000051), ("mean H", state, mean_h)
    assert state.min_var == pytest.approx(float(composition["mix_variance"].min()), abs=0.00051), "mix variance"

    order = f", order {state.order}" if state.method == "butterworth" else ""
    assert state.title == f"low-pass mask H: {state.method}, d_s={state.d_s:.2f}, d_t={state.d_t:.2f}{order}"
    want = list(mask_slices(mask).values())
    assert len(state.mask_z) == len(want) == 3, "the mask figure should show three slices"
    for shown, expected in zip(state.mask_z, want):
        np.testing.assert_allclose(shown, expected, atol=1e-6, err_msg="mask figure data is not the mask")
    assert len(state.images) == 3 and all(i.startswith("data:image/png") for i in state.images), "heat maps not drawn"

    assert len(state.bars) == 2, "the band figure should show two stacked bar series"
    np.testing.assert_allclose(state.bars[0], composition["from_diffused"].values, atol=1e-6)
    np.testing.assert_allclose(state.bars[1], composition["from_noise"].values, atol=1e-6)


def _wait_for_change(page, explorer, before: ExplorerState, until, budget) -> ExplorerState:
    """Poll until the page shows the settings ``until(state)`` expects with the numbers, the mask figure (data and
    images) and the bars all different from ``before`` (the kernel round trip is asynchronous)."""
    deadline = time.monotonic() + budget.left(UI_TIMEOUT_S)
    while True:
        now = _read_state(explorer)
        changed = (
            now.numbers() != before.numbers()
            and now.title != before.title
            and not all(np.array_equal(a, b) for a, b in zip(now.mask_z, before.mask_z))
            and now.images != before.images
            and not all(np.array_equal(a, b) for a, b in zip(now.bars, before.bars))
        )
        if until(now) and changed:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not update in time:\nbefore {before}\nnow    {now}")
        page.wait_for_timeout(200)


def _assert_no_error_output(page) -> None:
    """No traceback in any output (JupyterLab renders error outputs as stderr) and no widget that failed."""
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    tracebacks = [t for t in stderr.all_text_contents() if "Traceback" in t or re.search(r"^\w*(Error|Exception)\b", t, re.M)]
    assert not tracebacks, "error output in the notebook:\n" + "\n---\n".join(tracebacks)
    broken = page.get_by_text(re.compile("Error displaying widget|Failed to load model class|Model not found"))
    assert broken.count() == 0, f"widget failed to render: {broken.all_text_contents()}"


# -- driving JupyterLab --------------------------------------------------------------------------------------------
def _wait_for_kernel_idle(page, budget, cap_s: float = 90.0) -> None:
    """Wait until the status bar shows a started kernel that is idle ("Python 3 (ipykernel) | Idle")."""
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('#jp-main-statusbar');
            const text = bar ? bar.innerText : '';
            return /\\|\\s*Idle/.test(text) && !/No Kernel|Initializing|Starting/.test(text);
        }""",
        timeout=budget.left_ms(cap_s),
        polling=250,
    )


def _run_all_cells(page, budget) -> None:
    """Run > Run All Cells from the menu bar, as a person would, then wait for every code cell to finish.

    The kernel is waited for first: Run All before the session has a kernel makes JupyterLab ask which kernel to
    use and then run nothing. Should that dialog appear anyway, accept its preselected kernel and run again.
    """
    def run_all() -> None:
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu").get_by_role("menuitem", name="Run All Cells", exact=True).click()

    _wait_for_kernel_idle(page, budget)
    run_all()
    kernel_dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    finished = """() => {
        const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt'));
        return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
    }"""
    while not page.evaluate(finished):
        _assert_no_error_output(page)  # a failing cell stops Run All: report it now, not at the time limit
        if kernel_dialog.count():
            kernel_dialog.locator(".jp-mod-accept").click()
            _wait_for_kernel_idle(page, budget)
            run_all()
        budget.left()  # fails once the test's time is spent
        page.wait_for_timeout(250)


# -- the test ------------------------------------------------------------------------------------------------------
def test_cutoff_explorer_in_jupyterlab(jupyterlab, page, screenshot, reports_dir, budget):
    from playwright.sync_api import expect

    t0 = time.monotonic()
    shutil.copy(EXPLORER_NOTEBOOK, jupyterlab.root / EXPLORER_NOTEBOOK.name)  # a copy: the repository is not written
    page.goto(jupyterlab.lab_url(EXPLORER_NOTEBOOK.name), timeout=budget.left_ms(60))
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=budget.left_ms(60))
    _run_all_cells(page, budget)
    jupyterlab.remember_children()  # the kernel's pid, for teardown

    explorers = page.locator(_css("widget"))
    explorer = explorers.first
    explorer.locator(f"{_css('mask_figure')} .hm image").first.wait_for(state="attached", timeout=budget.left_ms(UI_TIMEOUT_S))
    assert explorers.count() == 1, "the notebook should display exactly one explorer"
    _assert_no_error_output(page)
    for part in ("method", "d_s", "d_t", "order", "num_iters", "run_button", "summary", "band_figure"):
        expect(explorer.locator(_css(part))).to_be_visible()

    start = _read_state(explorer)
    # The notebook leaves the explorer at its defaults (its checks cell restores them).
    assert (start.method, start.d_s, start.d_t, start.order) == ("butterworth", 0.25, 0.25, 4), start
    assert start.d_s_readout == "0.25"
    _assert_page_shows_its_mask(start)
    screenshot("01_rendered", explorer)

    # Move d_s up three steps (0.25 -> 0.40) with the keyboard on the slider handle.
    explorer.locator(f"{_css('d_s')} .noUi-handle").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(explorer.locator(f"{_css('d_s')} .widget-readout")).to_have_text("0.40", timeout=budget.left_ms(UI_TIMEOUT_S))
    wider = _wait_for_change(page, explorer, start, lambda st: st.d_s == 0.40, budget)
    assert (wider.method, wider.d_t, wider.order) == ("butterworth", 0.25, 4)
    # A wider low-pass keeps more of the spectrum: more bins kept, higher mean, more of each band from z_T.
    assert wider.kept > start.kept and wider.mean_h > start.mean_h
    assert np.all(wider.bars[0] >= start.bars[0] - 1e-9) and wider.bars[0].sum() > start.bars[0].sum()
    _assert_page_shows_its_mask(wider)
    screenshot("02_d_s_raised", explorer)

    # Switch the filter method to gaussian in the dropdown.
    explorer.locator(f"{_css('method')} select").select_option("gaussian")
    gauss = _wait_for_change(page, explorer, wider, lambda st: st.method == "gaussian", budget)
    assert (gauss.d_s, gauss.d_t, gauss.d_s_readout) == (0.40, 0.25, "0.40")
    assert "order" not in gauss.title  # the order only applies to butterworth
    _assert_page_shows_its_mask(gauss)
    screenshot("03_gaussian", explorer)
    screenshot("04_page")

    _assert_no_error_output(page)
    (reports_dir / "console.log").write_text("\n".join(page.errors) + "\n")
    page_errors = [e for e in page.errors if e.startswith("pageerror")]
    assert not page_errors, "uncaught exceptions in the page:\n" + "\n".join(page_errors)
    print(f"browser test body took {time.monotonic() - t0:.1f} s; screenshots in {reports_dir}")
