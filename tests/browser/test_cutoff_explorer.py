"""The cutoff explorer in a real JupyterLab in headless Chromium, used the way a person uses it.

Opens the notebook, runs all cells from the Run menu, waits for the widgets and the plotly figure to render,
moves the ``d_s`` slider with the keyboard and switches the filter method in the dropdown, and checks after each
step that the page shows no error, that the mask figure was redrawn (title and heatmap image) and that the
"kept bins" and "mean H" numbers in the summary changed to the values ``freeinit_lab.lowpass_filter`` gives for
the new settings. Screenshots of each state go to reports/browser/.

Run alone with ``python -m pytest -m browser``; see tests/browser/conftest.py for the isolation and teardown.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
EXPLORER_NOTEBOOK = REPO / "notebooks" / "04_cutoff_explorer.ipynb"
STANDIN_NOTEBOOK = Path(__file__).with_name("standin_explorer.ipynb")

RUN_TIMEOUT_MS = 120_000  # Run All on 2 shared cores: imports of torch/plotly dominate
UI_TIMEOUT_MS = 30_000

SUMMARY_RE = re.compile(
    r"kept bins:\s*(?P<kept>[\d.]+)\s*%.*?mean H:\s*(?P<mean>[\d.]+).*?latent grid:\s*(?P<grid>\d+\s*×\s*\d+\s*×\s*\d+)",
    re.S,
)
SETTINGS_RE = re.compile(r"(?P<method>gaussian|butterworth|ideal|box)\s+d_s=(?P<d_s>[\d.]+)\s+d_t=(?P<d_t>[\d.]+)")


@dataclass(frozen=True)
class ExplorerState:
    """What the page shows: the summary's numbers and settings, the mask figure's title and heatmap images."""

    kept: float
    mean_h: float
    grid: tuple[int, int, int]
    method: str
    d_s: float
    d_t: float
    title: str
    heatmaps: tuple[str, ...]
    bars: tuple[str, ...]


def _notebook_under_test() -> Path:
    return EXPLORER_NOTEBOOK if EXPLORER_NOTEBOOK.exists() else STANDIN_NOTEBOOK


def _assert_numbers_match_mask(state: ExplorerState, order: int) -> None:
    """The page's ``kept bins`` (%, 2 decimals) and ``mean H`` (4 decimals) are those of the mask it claims."""
    from freeinit_lab.spectral import lowpass_filter

    mask = lowpass_filter(state.grid, method=state.method, d_s=state.d_s, d_t=state.d_t, order=order)
    kept, mean_h = float((mask >= 0.5).double().mean()) * 100, float(mask.double().mean())
    assert state.kept == pytest.approx(kept, abs=0.0051), (state, kept)
    assert state.mean_h == pytest.approx(mean_h, abs=0.000051), (state, mean_h)


# -- page helpers ----------------------------------------------------------------------------------------------------
def _explorer(page):
    """The output that holds the explorer: the method dropdown together with a plotly figure (other outputs of the
    notebook, static figures included, are left alone)."""
    return (
        page.locator(".jp-OutputArea-output")
        .filter(has=page.locator(".widget-dropdown"))
        .filter(has=page.locator(".js-plotly-plot"))
        .last
    )


def _control(root, kind: str, label: str):
    """The ipywidgets control of CSS class ``widget-<kind>`` whose description is ``label``."""
    return root.locator(f".widget-{kind}").filter(
        has=root.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    ).first


def _mask_plot(root):
    return root.locator(".js-plotly-plot").filter(has=root.page.locator(".gtitle", has_text="mask")).first


def _read_state(root) -> ExplorerState:
    summary = root.locator(".widget-html", has_text="kept bins").first.inner_text()
    m, s = SUMMARY_RE.search(summary), SETTINGS_RE.search(summary)
    assert m and s, f"summary does not show the contract's numbers: {summary!r}"
    plot = _mask_plot(root)
    heatmaps = plot.evaluate(
        "el => Array.from(el.querySelectorAll('.hm image')).map(i => i.getAttribute('href') || i.getAttribute('xlink:href') || '')"
    )
    bars = root.evaluate(  # bar charts of the explorer (the band composition figure), if it has any
        "el => Array.from(el.querySelectorAll('.js-plotly-plot .barlayer .point path')).map(p => p.getAttribute('d'))"
    )
    return ExplorerState(
        kept=float(m["kept"]), mean_h=float(m["mean"]),
        grid=tuple(int(v) for v in re.findall(r"\d+", m["grid"])),  # type: ignore[arg-type]
        method=s["method"], d_s=float(s["d_s"]), d_t=float(s["d_t"]),
        title=plot.locator(".gtitle").first.text_content() or "", heatmaps=tuple(heatmaps), bars=tuple(bars),
    )


def _wait_for_change(root, before: ExplorerState, until, timeout_s: float = UI_TIMEOUT_MS / 1000) -> ExplorerState:
    """Poll until the page shows the settings ``until(state)`` expects, with the summary, the mask figure and the
    bar chart (when there is one) all different from ``before`` (one asynchronous kernel round trip per key press)."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = _read_state(root)
        if until(now) and (now.kept, now.mean_h) != (before.kept, before.mean_h) \
                and now.title != before.title and now.heatmaps != before.heatmaps \
                and (not before.bars or now.bars != before.bars):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not update within {timeout_s:.0f} s:\nbefore {before}\nnow    {now}")
        root.page.wait_for_timeout(200)


def _assert_no_error_output(page) -> None:
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    tracebacks = [t for t in stderr.all_inner_texts() if "Traceback" in t]
    assert not tracebacks, "error output in the notebook:\n" + "\n---\n".join(tracebacks)
    broken = page.get_by_text(re.compile("Error displaying widget|Failed to load model class|Model not found"))
    assert broken.count() == 0, f"widget failed to render: {broken.all_inner_texts()}"


def _dismiss_news_toast(page) -> None:
    """Answer "No" to JupyterLab's first-start "official Jupyter news?" toast so it covers nothing."""
    toast = page.locator(".Toastify__toast", has_text="Jupyter news")
    try:
        toast.get_by_role("button", name="No", exact=True).click(timeout=3_000)
    except Exception:  # noqa: BLE001 - absent in some JupyterLab versions: nothing to dismiss
        pass


def _wait_for_kernel_idle(page, timeout_ms: int = 90_000) -> None:
    """Wait until the status bar shows a started kernel that is idle ("Python 3 (ipykernel) | Idle")."""
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('#jp-main-statusbar');
            const text = bar ? bar.innerText : '';
            return /\\|\\s*Idle/.test(text) && !/No Kernel|Initializing|Starting/.test(text);
        }""",
        timeout=timeout_ms,
        polling=250,
    )


def _run_all_cells(page) -> None:
    """Run > Run All Cells from the menu bar, as a person would, then wait for every code cell to finish.

    The kernel is waited for first: Run All before the session has a kernel makes JupyterLab ask which kernel to
    use and then run nothing. Should that dialog appear anyway, accept its preselected kernel and run again.
    """
    def run_all() -> None:
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu").get_by_role("menuitem", name="Run All Cells", exact=True).click()

    _wait_for_kernel_idle(page)
    run_all()
    kernel_dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    finished = """() => {
        const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt'));
        return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
    }"""
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while not page.evaluate(finished):
        _assert_no_error_output(page)  # a failing cell stops Run All: report it now, not at the timeout
        if kernel_dialog.count():
            kernel_dialog.locator(".jp-mod-accept").click()
            _wait_for_kernel_idle(page)
            run_all()
        if time.monotonic() > deadline:
            raise AssertionError(f"Run All Cells did not finish within {RUN_TIMEOUT_MS / 1000:.0f} s")
        page.wait_for_timeout(250)


# -- the test ------------------------------------------------------------------------------------------------------
def test_cutoff_explorer_in_jupyterlab(jupyterlab, page, screenshot, reports_dir):
    from playwright.sync_api import expect

    t0 = time.monotonic()
    source = _notebook_under_test()
    shutil.copy(source, jupyterlab.root / source.name)  # a temporary copy: the repository is never written

    page.goto(jupyterlab.lab_url(source.name), timeout=60_000)
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    _dismiss_news_toast(page)
    _run_all_cells(page)
    jupyterlab.remember_children()  # the kernel's pid, for teardown

    explorer = _explorer(page)
    method = _control(explorer, "dropdown", "method").locator("select")
    d_s = _control(explorer, "hslider", "d_s")
    method.wait_for(timeout=UI_TIMEOUT_MS)
    d_s.wait_for(timeout=UI_TIMEOUT_MS)
    _mask_plot(explorer).locator(".hm image").first.wait_for(state="attached", timeout=UI_TIMEOUT_MS)
    _assert_no_error_output(page)

    order_readout = _control(explorer, "hslider", "order").locator(".widget-readout")
    order = int(order_readout.inner_text()) if order_readout.count() else 4

    start = _read_state(explorer)
    assert start.method == "butterworth" and d_s.locator(".widget-readout").inner_text().strip() == f"{start.d_s:.2f}"
    assert start.heatmaps and all(h.startswith("data:image") for h in start.heatmaps), "mask heatmap not drawn"
    _assert_numbers_match_mask(start, order)
    screenshot("01_rendered", explorer)

    # Move d_s up three steps (0.25 -> 0.40) with the keyboard on the slider handle.
    target = f"{start.d_s + 0.15:.2f}"
    d_s.locator(".noUi-handle").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(d_s.locator(".widget-readout")).to_have_text(target, timeout=UI_TIMEOUT_MS)  # the slider itself moved
    wider = _wait_for_change(explorer, start, until=lambda st: f"{st.d_s:.2f}" == target)
    assert wider.method == "butterworth"
    assert f"d_s={target}" in wider.title
    # A wider low-pass keeps more of the spectrum; and the numbers are the ones this mask really has.
    assert wider.kept > start.kept and wider.mean_h > start.mean_h
    _assert_numbers_match_mask(wider, order)
    screenshot("02_d_s_raised", explorer)

    # Switch the filter method to gaussian in the dropdown.
    method.select_option("gaussian")
    gauss = _wait_for_change(explorer, wider, until=lambda st: st.method == "gaussian")
    assert "gaussian" in gauss.title and f"{gauss.d_s:.2f}" == target
    _assert_numbers_match_mask(gauss, order)
    screenshot("03_gaussian", explorer)
    screenshot("04_page")

    _assert_no_error_output(page)
    page_errors = [e for e in page.errors if e.startswith("pageerror")]
    (reports_dir / "console.log").write_text("\n".join(page.errors) + "\n")
    assert not page_errors, "uncaught exceptions in the page:\n" + "\n".join(page_errors)
    print(f"browser test body took {time.monotonic() - t0:.1f} s; screenshots in {reports_dir}")
